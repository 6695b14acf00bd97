#pragma once

// Shared by the resource parsers (resources.cc, config_resource.cc).

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"
#include "remora/components/common/strings.h"

namespace remora::runtime {

// Every document of a (multi-document) YAML text; a syntax error names `origin`, line and column.
inline absl::StatusOr<std::vector<YAML::Node>> LoadYamlDocuments(const std::string& yaml_text,
                                                                 const std::string& origin) {
  try {
    return YAML::LoadAll(yaml_text);
  } catch (const YAML::ParserException& e) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat(origin, ": YAML syntax error at line ", e.mark.line + 1, ", column ",
                             e.mark.column + 1, ": ", e.msg));
  }
}

}  // namespace remora::runtime
