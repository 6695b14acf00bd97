// A minimal SDK application for bench/grpc_state.sh's first-call figure: create a remote
// remora::Client, make one state GET, print "ok <µs from client construction to answer>" (or
// "error <status>") and exit. Linked with the SDK's remote transport only (remora_sdk_remote),
// as an application that talks to a sidecar would be, so exec pays for what such an app loads.
//
//   grpc_first_call ADDR STORE KEY

#include <chrono>
#include <cstdio>
#include <string>

#include "remora/client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: grpc_first_call ADDR STORE KEY\n");
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  remora::RemoteOptions options;
  options.address = argv[1];
  auto client = remora::Client::Remote(options);
  auto got = client->GetState(argv[2], argv[3]);
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  if (!got.ok() || !got->found) {
    std::printf("error %s\n",
                got.ok() ? "not found" : std::string(got.status().ToString()).c_str());
    return 1;
  }
  std::printf("ok %.1f\n", us);
  std::fflush(stdout);
  return 0;
}
