#include "remora/runtime/resources.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::runtime {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Names(const Resources& r) {
  std::vector<std::string> names;
  for (const ComponentSpec& c : r.components) names.push_back(c.name);
  return names;
}

absl::StatusOr<Resources> Parse(const std::string& yaml, const std::string& app_id = "app",
                                const std::string& ns = "") {
  Resources r;
  absl::Status status = ParseResourceDocuments(yaml, "components/test.yaml", app_id, ns, &r);
  if (!status.ok()) return status;
  return r;
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<Resources> r = Parse(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? "" : std::string(MessageOf(r.status()));
}

std::string Component(const std::string& name, const std::string& extra = "") {
  return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ", name,
                "\nspec:\n  type: state.in-memory\n", extra);
}

// A fresh directory under the test's temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "remora-resources-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) const {
    fs::path file = fs::path(path_) / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << content;
    return file.string();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ResourcesTest, ParsesEveryComponentField) {
  absl::StatusOr<Resources> r = Parse(R"(
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
  namespace: prod
spec:
  type: state.redis
  version: v2
  initTimeout: 10s
  ignoreErrors: true
  metadata:
  - { name: redisHost, value: "localhost:6379" }
  - { name: redisDB, value: 3 }
  - { name: actorStateStore, value: true }
  - { name: empty, value: }
  - name: redisPassword
    secretKeyRef: { name: redis-secret, key: password }
  - name: wholeSecret
    secretKeyRef: { name: other }
  - { name: fromEnv, envRef: REDIS_USER }
  - name: structured
    value:
      hosts: [a, "b"]
      port: 6379
      tls: false
      ratio: 0.5
      quoted: "7"
      none: ~
auth: { secretStore: localsecrets }
scopes: [orders, checkout]
)",
                                      "orders", "prod");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->components.size(), 1u);
  const ComponentSpec& c = r->components[0];
  EXPECT_EQ(c.name, "statestore");
  EXPECT_EQ(c.namespace_, "prod");
  EXPECT_EQ(c.type, "state.redis");
  EXPECT_EQ(c.version, "v2");
  EXPECT_EQ(c.init_timeout, "10s");
  EXPECT_TRUE(c.ignore_errors);
  EXPECT_EQ(c.auth_secret_store, "localsecrets");
  EXPECT_THAT(c.scopes, ElementsAre("orders", "checkout"));
  EXPECT_EQ(c.source.file, "components/test.yaml");
  EXPECT_EQ(c.source.document, 1);
  ASSERT_EQ(c.metadata.size(), 8u);
  EXPECT_EQ(c.metadata[0].name, "redisHost");
  EXPECT_EQ(c.metadata[0].value, "localhost:6379");
  EXPECT_EQ(c.metadata[1].value, "3");
  EXPECT_EQ(c.metadata[2].value, "true");
  EXPECT_EQ(c.metadata[3].value, "");
  EXPECT_FALSE(c.metadata[3].secret_key_ref.has_value());
  ASSERT_TRUE(c.metadata[4].secret_key_ref.has_value());
  EXPECT_EQ(c.metadata[4].secret_key_ref->name, "redis-secret");
  EXPECT_EQ(c.metadata[4].secret_key_ref->key, "password");
  ASSERT_TRUE(c.metadata[5].secret_key_ref.has_value());
  EXPECT_EQ(c.metadata[5].secret_key_ref->name, "other");
  EXPECT_EQ(c.metadata[5].secret_key_ref->key, "");
  EXPECT_EQ(c.metadata[6].env_ref, "REDIS_USER");
  EXPECT_FALSE(c.metadata[6].secret_key_ref.has_value());
  // A structured value reaches the component as its JSON text, with YAML's scalar types.
  nlohmann::json structured = nlohmann::json::parse(c.metadata[7].value);
  EXPECT_EQ(structured, nlohmann::json::parse(
                            R"({"hosts":["a","b"],"port":6379,"tls":false,"ratio":0.5,
                                "quoted":"7","none":null})"));
}

TEST(ResourcesTest, Defaults) {
  absl::StatusOr<Resources> r = Parse(Component("s"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->components.size(), 1u);
  EXPECT_EQ(r->components[0].version, "v1");
  EXPECT_EQ(r->components[0].init_timeout, "5s");
  EXPECT_FALSE(r->components[0].ignore_errors);
  EXPECT_THAT(r->components[0].metadata, IsEmpty());
  EXPECT_THAT(r->components[0].scopes, IsEmpty());
  EXPECT_EQ(r->components[0].auth_secret_store, "");
}

TEST(ResourcesTest, MultipleDocumentsKeepTheirNumbers) {
  absl::StatusOr<Resources> r =
      Parse(StrCat("# comment\n---\n", Component("a"), "---\n---\n", Component("b"), "---\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("a", "b"));
  EXPECT_EQ(r->components[1].source.document, 3);  // the empty document still counts
  EXPECT_EQ(r->components[1].source.Describe(), "components/test.yaml (document 3)");
}

TEST(ResourcesTest, OtherKindsAreSkipped) {
  absl::StatusOr<Resources> r = Parse(StrCat(R"(apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: sub }
spec: { topic: orders, routes: { default: /orders }, pubsubname: pubsub }
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: res }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: cm }
---
)",
                                             Component("kept")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("kept"));
}

TEST(ResourcesTest, ScopesLimitWhichAppsSeeAComponent) {
  std::string yaml = StrCat(Component("open"), "---\n", Component("mine", "scopes: [orders]\n"),
                            "---\n", Component("theirs", "scopes: [checkout, billing]\n"), "---\n",
                            Component("empty", "scopes: []\n"));
  absl::StatusOr<Resources> r = Parse(yaml, "orders");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("open", "mine", "empty"));
  r = Parse(yaml, "billing");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("open", "theirs", "empty"));
}

TEST(ResourcesTest, NamespaceFiltersOnlyWhenSet) {
  auto in_ns = [](const std::string& name, const std::string& ns) {
    return StrCat("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ", name,
                  "\n  namespace: ", ns, "\nspec:\n  type: state.in-memory\n");
  };
  std::string yaml =
      StrCat(in_ns("p", "prod"), "---\n", in_ns("d", "dev"), "---\n", Component("none"));
  absl::StatusOr<Resources> r = Parse(yaml, "app", "prod");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("p", "none"));
  r = Parse(yaml, "app", "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("p", "d", "none"));
}

TEST(ResourcesTest, ScopedAwayDuplicateIsNoConflict) {
  absl::StatusOr<Resources> r = Parse(
      StrCat(Component("s", "scopes: [other]\n"), "---\n", Component("s", "scopes: [app]\n")));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->components.size(), 1u);
  EXPECT_EQ(r->components[0].source.document, 2);
}

TEST(ResourcesTest, ErrorsNameTheDocumentAndTheField) {
  const std::string header = "apiVersion: dapr.io/v1alpha1\nkind: Component\n";
  EXPECT_EQ(ErrorOf(StrCat(Component("ok"), "---\n", header, "metadata: { name: x }\nspec: {}\n")),
            "components/test.yaml (document 2): spec.type is required");
  EXPECT_EQ(ErrorOf(StrCat(header, "metadata: { name: x }\n")),
            "components/test.yaml (document 1): spec.type is required");
  EXPECT_EQ(ErrorOf(StrCat(header, "spec: { type: state.redis }\n")),
            "components/test.yaml (document 1): metadata.name is required");
  EXPECT_EQ(ErrorOf(StrCat(header, "metadata: { name: '' }\nspec: { type: state.redis }\n")),
            "components/test.yaml (document 1): metadata.name is required");
  EXPECT_EQ(ErrorOf(Component("x", "  metadata:\n  - { name: a, value: b }\n  - { value: c }\n")),
            "components/test.yaml (document 1): spec.metadata[1].name is required");
  EXPECT_EQ(ErrorOf(Component("x", "  metadata: { name: a }\n")),
            "components/test.yaml (document 1): spec.metadata must be a list of {name, value} "
            "items");
  EXPECT_EQ(ErrorOf(Component("x", "  metadata:\n  - name: a\n    secretKeyRef: { key: k }\n")),
            "components/test.yaml (document 1): spec.metadata[0].secretKeyRef.name is required");
  EXPECT_EQ(ErrorOf(Component("x", "  ignoreErrors: sometimes\n")),
            "components/test.yaml (document 1): spec.ignoreErrors must be true or false");
  EXPECT_THAT(ErrorOf(Component("x", "  initTimeout: soon\n")),
              HasSubstr("(document 1): spec.initTimeout \"soon\" is not a duration"));
  EXPECT_THAT(ErrorOf(Component("x", "scopes: orders\n")), HasSubstr("scopes must be a list"));
  EXPECT_THAT(ErrorOf("apiVersion: dapr.io/v2\nkind: Component\nmetadata: { name: x }\n"),
              HasSubstr("(document 1): apiVersion must be dapr.io/v1alpha1"));
  EXPECT_EQ(ErrorOf(StrCat(Component("a"), "---\n- just\n- a list\n")),
            "components/test.yaml (document 2): a resource must be a mapping");
  EXPECT_THAT(ErrorOf(StrCat(header, "metadata:\n  name: [x]\n")),
              HasSubstr("metadata.name must be a string"));
}

TEST(ResourcesTest, YamlSyntaxErrorCarriesTheLine) {
  std::string message = ErrorOf(StrCat(Component("a"), "---\nkind: Component\nmetadata: [x,\n"));
  EXPECT_THAT(message, HasSubstr("components/test.yaml: YAML syntax error at line "));
  // The unclosed flow sequence starts on line 9 and the parser gives up at the end of the text.
  EXPECT_THAT(message, ::testing::ContainsRegex("line (9|10)"));
}

TEST(ResourcesTest, DuplicateNamesNameBothLocations) {
  EXPECT_EQ(ErrorOf(StrCat(Component("s"), "---\n", Component("t"), "---\n", Component("s"))),
            "component name \"s\" is defined twice: components/test.yaml (document 1) and "
            "components/test.yaml (document 3)");
}

TEST(LoadResourcesTest, ReadsYamlFilesSortedAndNonRecursive) {
  TempDir dir;
  dir.Write("b.yaml", Component("from-b"));
  dir.Write("a.yml", StrCat(Component("from-a1"), "---\n", Component("from-a2")));
  dir.Write("c.txt", Component("from-txt"));
  dir.Write("nested/d.yaml", Component("from-nested"));
  dir.Write("empty.yaml", "");
  TempDir other;
  other.Write("x.yaml", Component("from-other"));

  absl::StatusOr<Resources> r = LoadResources({dir.path(), other.path()}, "app", "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Names(*r), ElementsAre("from-a1", "from-a2", "from-b", "from-other"));
  EXPECT_EQ(r->components[1].source.file, (fs::path(dir.path()) / "a.yml").string());
  EXPECT_EQ(r->components[1].source.document, 2);
}

TEST(LoadResourcesTest, ErrorsNameTheFile) {
  TempDir dir;
  dir.Write("a.yaml", Component("ok"));
  std::string bad = dir.Write("redis.yaml", StrCat(Component("fine"), "---\n",
                                                   "apiVersion: dapr.io/v1alpha1\nkind: "
                                                   "Component\nmetadata: { name: r }\n"));
  absl::StatusOr<Resources> r = LoadResources({dir.path()}, "app", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(MessageOf(r.status()), StrCat(bad, " (document 2): spec.type is required"));
}

TEST(LoadResourcesTest, DuplicateAcrossFilesNamesBothFiles) {
  TempDir dir;
  std::string a = dir.Write("a.yaml", Component("statestore"));
  std::string b = dir.Write("b.yaml", StrCat(Component("x"), "---\n", Component("statestore")));
  absl::StatusOr<Resources> r = LoadResources({dir.path()}, "app", "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr(StrCat(a, " (document 1)")));
  EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr(StrCat(b, " (document 2)")));
}

TEST(LoadResourcesTest, MissingDirectoryIsAnError) {
  TempDir dir;
  std::string missing = (fs::path(dir.path()) / "nope").string();
  absl::StatusOr<Resources> r = LoadResources({dir.path(), missing}, "app", "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(MessageOf(r.status())), HasSubstr(StrCat("\"", missing, "\"")));
  // A file is not a directory either.
  std::string file = dir.Write("f.yaml", Component("x"));
  EXPECT_FALSE(LoadResources({file}, "app", "").ok());
}

TEST(LoadResourcesTest, NoDirectoriesMeansNoResources) {
  absl::StatusOr<Resources> r = LoadResources({}, "app", "");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->components, IsEmpty());
}

}  // namespace
}  // namespace remora::runtime
