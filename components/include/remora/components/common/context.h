#pragma once

#include <string>

#include "remora/components/common/metadata.h"

namespace boost::asio {
class io_context;
}

namespace remora::components {

// Everything a factory gets to build one component instance.
struct ComponentContext {
  std::string name;       // metadata.name of the Component resource
  std::string type;       // spec.type, e.g. "state.redis"
  std::string version;    // spec.version, e.g. "v1"
  std::string app_id;     // --app-id (may be empty)
  std::string namespace_; // NAMESPACE env in self-hosted mode (may be empty)
  Metadata metadata;      // spec.metadata, secrets already resolved
  // The event loop that network clients run on. Never null inside remorad; components must not
  // block it.
  boost::asio::io_context* io_context = nullptr;
};

}  // namespace remora::components
