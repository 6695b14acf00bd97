#include "api/grpc/loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "remora/components/common/strings.h"

namespace remora::runtime::grpc {
namespace {

constexpr char kModuleName[] = "libremora_grpc.so";

std::string ExecutableDir() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string exe(path, static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

std::vector<std::string> Candidates() {
  if (const char* env = std::getenv("REMORA_GRPC_MODULE"); env != nullptr && *env != '\0') {
    return {env};
  }
  std::string dir = ExecutableDir();
  return {StrCat(dir, "/", kModuleName), StrCat(dir, "/../lib/remora/", kModuleName)};
}

// The module's entry point, loaded once per process.
absl::StatusOr<StartFn> Load() {
  static std::once_flag once;
  static absl::StatusOr<StartFn> loaded = MakeStatus(absl::StatusCode::kInternal, "not loaded");
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& path : Candidates()) {
      if (::access(path.c_str(), F_OK) != 0) {
        StrAppend(&tried, "\n  ", path, ": not found");
        continue;
      }
      // RTLD_LOCAL: gRPC's and protobuf's symbols stay out of the global scope.
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        StrAppend(&tried, "\n  ", path, ": ", ::dlerror());
        continue;
      }
      void* symbol = ::dlsym(handle, kStartSymbol);
      if (symbol == nullptr) {
        StrAppend(&tried, "\n  ", path, ": no symbol ", kStartSymbol);
        ::dlclose(handle);
        continue;
      }
      loaded = *static_cast<const StartFn*>(symbol);
      return;
    }
    loaded = MakeStatus(absl::StatusCode::kFailedPrecondition,
                        StrCat("gRPC API: cannot load ", kModuleName,
                               " (set REMORA_GRPC_MODULE to its path); tried:", tried));
  });
  return loaded;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Api>> LoadAndStart(Blocks blocks, ApiHooks hooks, ApiConfig config) {
  auto start = Load();
  if (!start.ok()) return start.status();
  return (*start)(blocks, std::move(hooks), std::move(config));
}

}  // namespace remora::runtime::grpc
