// Holds Remora's .proto files (proto/dapr/...) to the wire format of Dapr's own, as shipped in the
// official JS SDK pinned in tests/compat/package.json. Our side is read from the descriptors
// compiled into remora_proto, so the check covers what the binaries actually speak. Dapr's side
// is compiled here with protoc into a descriptor set and loaded into a separate pool.
//
// For every message and enum we declare: each of our fields exists in Dapr's with the same
// number, type, label, type name, JSON name, `optional` marker and oneof; each of Dapr's fields
// exists in ours (nothing is lost on the wire). For every service method we declare: Dapr has it
// with the same request/response types and streaming shape.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"
#include "dapr/proto/runtime/v1/dapr.grpc.pb.h"

namespace remora::compat {
namespace {

namespace fs = std::filesystem;
namespace pb = google::protobuf;

// Present in Dapr v1.18.3 (contract §1.2 and §1.4) but newer than the .proto files that
// @dapr/dapr 3.18.0 ships. When the SDK's copy lacks one of these it is not a failure; when a
// later SDK has it, it is checked like everything else.
const std::set<std::string>& NewerThanSdk() {
  static const auto* names = new std::set<std::string>{
      "dapr.proto.runtime.v1.GetMetadataResponse.mcp_servers",
      "dapr.proto.runtime.v1.GetMetadataResponse.workflow_access_policies",
      "dapr.proto.runtime.v1.GetMetadataResponse.resiliencies",
      "dapr.proto.runtime.v1.MetadataMCPServer",
      "dapr.proto.runtime.v1.MetadataWorkflowAccessPolicy",
      "dapr.proto.runtime.v1.MetadataResiliency",
      "dapr.proto.runtime.v1.AppCallback.OnJobEvent",
  };
  return *names;
}

// The RPCs of contract §1.1 that Remora declares on the Dapr service.
const std::vector<std::string>& DeclaredDaprRpcs() {
  static const auto* names = new std::vector<std::string>{
      "InvokeService",
      "GetState",
      "GetBulkState",
      "SaveState",
      "QueryStateAlpha1",
      "DeleteState",
      "DeleteBulkState",
      "ExecuteStateTransaction",
      "PublishEvent",
      "BulkPublishEventAlpha1",
      "BulkPublishEvent",
      "SubscribeTopicEventsAlpha1",
      "InvokeBinding",
      "GetSecret",
      "GetBulkSecret",
      "GetConfigurationAlpha1",
      "GetConfiguration",
      "SubscribeConfigurationAlpha1",
      "SubscribeConfiguration",
      "UnsubscribeConfigurationAlpha1",
      "UnsubscribeConfiguration",
      "TryLockAlpha1",
      "UnlockAlpha1",
      "GetMetadata",
      "SetMetadata",
      "Shutdown",
  };
  return *names;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Dapr's descriptors, loaded once for the whole binary. On failure `error` says what to do.
struct DaprProtos {
  pb::DescriptorPool pool;
  std::string error;
};

const DaprProtos& LoadDaprProtos() {
  static DaprProtos* loaded = [] {
    auto* d = new DaprProtos;
    const fs::path compat = fs::path(REMORA_SOURCE_DIR) / "tests" / "compat";
    const fs::path sdk = compat / "node_modules" / "@dapr" / "dapr";
    const fs::path root = sdk / "proto";
    if (!fs::exists(root / "dapr" / "proto" / "runtime" / "v1" / "dapr.proto")) {
      d->error = "Dapr's .proto files are missing: " + root.string() +
                 " has no dapr/proto/runtime/v1/dapr.proto. They come with the @dapr/dapr npm "
                 "package pinned in tests/compat/package.json, which the test command installs. "
                 "Run the test command, or tests/compat/install.sh, then rerun this test.";
      return d;
    }
    const auto want = nlohmann::json::parse(ReadFile(compat / "package.json"), nullptr, false);
    const auto have = nlohmann::json::parse(ReadFile(sdk / "package.json"), nullptr, false);
    const std::string want_version =
        want.is_discarded() ? "" : want["dependencies"].value("@dapr/dapr", std::string());
    const std::string have_version = have.is_discarded() ? "" : have.value("version", "");
    if (want_version != have_version) {
      d->error = "tests/compat/node_modules holds @dapr/dapr '" + have_version +
                 "' but package.json pins '" + want_version +
                 "'. Run the test command, or tests/compat/install.sh, to update it.";
      return d;
    }

    char tmpl[] = "/tmp/remora-dapr-protos-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) {
      d->error = "mkstemp failed";
      return d;
    }
    close(fd);
    const std::string out = tmpl;
    const std::string log = out + ".log";
    const std::string cmd = Quote(REMORA_PROTOC) + " -I " + Quote(root.string()) +
                            " --include_imports --descriptor_set_out=" + Quote(out) +
                            " dapr/proto/runtime/v1/dapr.proto"
                            " dapr/proto/runtime/v1/appcallback.proto"
                            " dapr/proto/common/v1/common.proto"
                            " > " +
                            Quote(log) + " 2>&1";
    const int rc = std::system(cmd.c_str());
    pb::FileDescriptorSet set;
    if (rc != 0 || !set.ParseFromString(ReadFile(out))) {
      d->error = "protoc could not compile Dapr's .proto files (exit " + std::to_string(rc) +
                 "): " + ReadFile(log);
    }
    fs::remove(out);
    fs::remove(log);
    if (!d->error.empty()) return d;
    // --include_imports lists dependencies before their users, as BuildFile needs.
    for (const auto& file : set.file()) {
      if (d->pool.BuildFile(file) == nullptr) {
        d->error = "could not load " + file.name() + " from Dapr's descriptor set";
        return d;
      }
    }
    return d;
  }();
  return *loaded;
}

// Every .proto of ours in the dapr.proto.* packages, reached from the two service files.
std::vector<const pb::FileDescriptor*> OurFiles() {
  std::vector<const pb::FileDescriptor*> out;
  std::set<const pb::FileDescriptor*> seen;
  std::vector<const pb::FileDescriptor*> todo = {
      dapr::proto::runtime::v1::ShutdownRequest::descriptor()->file(),
      dapr::proto::runtime::v1::HealthCheckResponse::descriptor()->file()};
  while (!todo.empty()) {
    const pb::FileDescriptor* f = todo.back();
    todo.pop_back();
    if (!seen.insert(f).second) continue;
    if (f->package().rfind("dapr.proto.", 0) != 0) continue;
    out.push_back(f);
    for (int i = 0; i < f->dependency_count(); ++i) todo.push_back(f->dependency(i));
  }
  return out;
}

template <typename Fn>
void ForEachMessage(const pb::Descriptor* m, const Fn& fn) {
  fn(m);
  for (int i = 0; i < m->nested_type_count(); ++i) ForEachMessage(m->nested_type(i), fn);
}

std::vector<const pb::Descriptor*> OurMessages() {
  std::vector<const pb::Descriptor*> out;
  for (const auto* f : OurFiles()) {
    for (int i = 0; i < f->message_type_count(); ++i) {
      ForEachMessage(f->message_type(i), [&](const pb::Descriptor* m) { out.push_back(m); });
    }
  }
  return out;
}

std::vector<const pb::EnumDescriptor*> OurEnums() {
  std::vector<const pb::EnumDescriptor*> out;
  for (const auto* f : OurFiles()) {
    for (int i = 0; i < f->enum_type_count(); ++i) out.push_back(f->enum_type(i));
  }
  for (const auto* m : OurMessages()) {
    for (int i = 0; i < m->enum_type_count(); ++i) out.push_back(m->enum_type(i));
  }
  return out;
}

std::string TypeName(const pb::FieldDescriptor* f) {
  if (f->message_type() != nullptr) return f->message_type()->full_name();
  if (f->enum_type() != nullptr) return f->enum_type()->full_name();
  return "";
}

std::string OneofName(const pb::FieldDescriptor* f) {
  const pb::OneofDescriptor* o = f->real_containing_oneof();
  return o == nullptr ? "" : o->name();
}

// One line per wire-relevant property, so a mismatch prints both sides readably.
std::string Describe(const pb::FieldDescriptor* f) {
  std::ostringstream s;
  s << "number=" << f->number() << " type=" << f->type_name() << " label=" << f->label()
    << " type_name=" << TypeName(f) << " json_name=" << f->json_name()
    << " optional_keyword=" << f->has_optional_keyword() << " oneof=" << OneofName(f)
    << " packed=" << f->is_packed();
  return s.str();
}

#define REQUIRE_DAPR_PROTOS()                \
  const DaprProtos& dapr = LoadDaprProtos(); \
  ASSERT_TRUE(dapr.error.empty()) << dapr.error

TEST(ProtoCompatTest, OurFilesAreTheExpectedSet) {
  std::set<std::string> names;
  for (const auto* f : OurFiles()) names.insert(f->name());
  EXPECT_EQ(names, (std::set<std::string>{
                       "dapr/proto/common/v1/common.proto",
                       "dapr/proto/runtime/v1/appcallback.proto",
                       "dapr/proto/runtime/v1/binding.proto",
                       "dapr/proto/runtime/v1/configuration.proto",
                       "dapr/proto/runtime/v1/dapr.proto",
                       "dapr/proto/runtime/v1/invoke.proto",
                       "dapr/proto/runtime/v1/lock.proto",
                       "dapr/proto/runtime/v1/metadata.proto",
                       "dapr/proto/runtime/v1/pubsub.proto",
                       "dapr/proto/runtime/v1/secret.proto",
                       "dapr/proto/runtime/v1/state.proto",
                   }));
}

TEST(ProtoCompatTest, MessagesMatchDaprFieldForField) {
  REQUIRE_DAPR_PROTOS();
  int checked_fields = 0;
  for (const pb::Descriptor* ours : OurMessages()) {
    const pb::Descriptor* theirs = dapr.pool.FindMessageTypeByName(ours->full_name());
    if (theirs == nullptr) {
      EXPECT_TRUE(NewerThanSdk().count(ours->full_name()))
          << ours->full_name() << " is not a message in Dapr's protos";
      continue;
    }
    for (int i = 0; i < ours->field_count(); ++i) {
      const pb::FieldDescriptor* f = ours->field(i);
      const pb::FieldDescriptor* g = theirs->FindFieldByName(f->name());
      if (g == nullptr) {
        EXPECT_TRUE(NewerThanSdk().count(f->full_name()))
            << f->full_name() << " (" << Describe(f) << ") is not a field in Dapr's protos";
        continue;
      }
      EXPECT_EQ(Describe(f), Describe(g)) << f->full_name() << ": ours (left) differs from Dapr's";
      ++checked_fields;
    }
    for (int i = 0; i < theirs->field_count(); ++i) {
      const pb::FieldDescriptor* g = theirs->field(i);
      EXPECT_NE(ours->FindFieldByName(g->name()), nullptr)
          << g->full_name() << " (" << Describe(g) << ") is missing from our protos";
    }
    for (int i = 0; i < theirs->enum_type_count(); ++i) {
      EXPECT_NE(ours->FindEnumTypeByName(theirs->enum_type(i)->name()), nullptr)
          << theirs->enum_type(i)->full_name() << " is missing from our protos";
    }
  }
  // A vacuous pass (nothing compiled in, nothing found) must not look like success.
  EXPECT_GT(checked_fields, 200);
}

TEST(ProtoCompatTest, EnumsMatchDaprValueForValue) {
  REQUIRE_DAPR_PROTOS();
  const std::vector<const pb::EnumDescriptor*> enums = OurEnums();
  EXPECT_GE(enums.size(), 8u);
  for (const pb::EnumDescriptor* ours : enums) {
    const pb::EnumDescriptor* theirs = dapr.pool.FindEnumTypeByName(ours->full_name());
    if (theirs == nullptr) {
      ADD_FAILURE() << ours->full_name() << " is not an enum in Dapr's protos";
      continue;
    }
    for (int i = 0; i < ours->value_count(); ++i) {
      const pb::EnumValueDescriptor* v = ours->value(i);
      const pb::EnumValueDescriptor* w = theirs->FindValueByName(v->name());
      if (w == nullptr) {
        ADD_FAILURE() << v->full_name() << " is not a value of Dapr's " << theirs->full_name();
      } else {
        EXPECT_EQ(v->number(), w->number()) << v->full_name();
      }
    }
    for (int i = 0; i < theirs->value_count(); ++i) {
      EXPECT_NE(ours->FindValueByName(theirs->value(i)->name()), nullptr)
          << theirs->value(i)->full_name() << " is missing from our protos";
    }
  }
}

TEST(ProtoCompatTest, ServiceMethodsHaveDaprsSignatures) {
  REQUIRE_DAPR_PROTOS();
  int checked_methods = 0;
  for (const auto* file : OurFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      const pb::ServiceDescriptor* ours = file->service(s);
      const pb::ServiceDescriptor* theirs = dapr.pool.FindServiceByName(ours->full_name());
      if (theirs == nullptr) {
        ADD_FAILURE() << ours->full_name() << " is not a service in Dapr's protos";
        continue;
      }
      for (int i = 0; i < ours->method_count(); ++i) {
        const pb::MethodDescriptor* m = ours->method(i);
        const pb::MethodDescriptor* n = theirs->FindMethodByName(m->name());
        if (n == nullptr) {
          EXPECT_TRUE(NewerThanSdk().count(m->full_name()))
              << m->full_name() << " is not a method in Dapr's protos";
          continue;
        }
        EXPECT_EQ(m->input_type()->full_name(), n->input_type()->full_name()) << m->full_name();
        EXPECT_EQ(m->output_type()->full_name(), n->output_type()->full_name()) << m->full_name();
        EXPECT_EQ(m->client_streaming(), n->client_streaming()) << m->full_name();
        EXPECT_EQ(m->server_streaming(), n->server_streaming()) << m->full_name();
        ++checked_methods;
      }
      // The app-side services are implemented by apps and called by us: we need all of them.
      if (ours->name() != "Dapr") {
        for (int i = 0; i < theirs->method_count(); ++i) {
          EXPECT_NE(ours->FindMethodByName(theirs->method(i)->name()), nullptr)
              << theirs->method(i)->full_name() << " is missing from our protos";
        }
      }
    }
  }
  // Dapr 26, AppCallback 6 (OnJobEvent is excused), health 1, alpha 2.
  EXPECT_GE(checked_methods, 35);
}

TEST(ProtoCompatTest, DaprServiceDeclaresExactlyTheContractRpcs) {
  const pb::ServiceDescriptor* service = pb::DescriptorPool::generated_pool()->FindServiceByName(
      dapr::proto::runtime::v1::Dapr::service_full_name());
  ASSERT_NE(service, nullptr);
  std::set<std::string> declared;
  for (int i = 0; i < service->method_count(); ++i) declared.insert(service->method(i)->name());
  const std::set<std::string> expected(DeclaredDaprRpcs().begin(), DeclaredDaprRpcs().end());
  EXPECT_EQ(declared, expected);
}

TEST(ProtoCompatTest, EveryAllowanceForNewerFieldsIsUsed) {
  // A stale entry in NewerThanSdk() would silently excuse a future typo.
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  for (const std::string& name : NewerThanSdk()) {
    EXPECT_TRUE(pool->FindMessageTypeByName(name) != nullptr ||
                pool->FindFieldByName(name) != nullptr || pool->FindMethodByName(name) != nullptr)
        << name << " is excused as newer than the SDK's protos but is not declared by us";
  }
}

}  // namespace
}  // namespace remora::compat
