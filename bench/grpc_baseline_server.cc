// The baseline of bench/grpc_state.sh: a gRPC server implementing dapr.proto.runtime.v1.Dapr
// GetState, and nothing else, answering the same bytes for any key (the value in --value-file
// and --etag). No sidecar logic: it measures what gRPC itself costs for this exchange, so that
// the difference to remorad is what the sidecar adds.
//
//   grpc_baseline_server --port P --value-file F [--etag E]
//
// Listens on 127.0.0.1:P (0: gRPC picks one), prints "PORT <n>" once serving, and runs until
// killed. It uses the callback API and the same server settings as remorad's gRPC API
// (runtime/api/grpc/server.cc: SO_REUSEPORT off), so neither side gets a different threading
// model.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

namespace v1 = dapr::proto::runtime::v1;

class BaselineDapr final : public v1::Dapr::CallbackService {
 public:
  BaselineDapr(std::string value, std::string etag)
      : value_(std::move(value)), etag_(std::move(etag)) {}

  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* ctx,
                                     const v1::GetStateRequest* /*request*/,
                                     v1::GetStateResponse* response) override {
    response->set_data(value_);
    response->set_etag(etag_);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const std::string value_;
  const std::string etag_;
};

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "grpc_baseline_server: " << message << "\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string value_file;
  std::string etag = "1";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--port") {
      port = std::atoi(next().c_str());
    } else if (arg == "--value-file") {
      value_file = next();
    } else if (arg == "--etag") {
      etag = next();
    } else {
      Die("unknown option " + arg);
    }
  }
  if (value_file.empty()) Die("--value-file is required");
  std::ifstream in(value_file, std::ios::binary);
  if (!in) Die("cannot read " + value_file);
  std::stringstream value;
  value << in.rdbuf();

  BaselineDapr service(value.str(), etag);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int selected = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &selected);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected <= 0) Die("cannot listen on port " + std::to_string(port));
  std::printf("PORT %d\n", selected);
  std::fflush(stdout);
  server->Wait();  // until killed
  return 0;
}
