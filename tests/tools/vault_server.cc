// A small HashiCorp Vault test server: the KV version 2 HTTP API as Vault publishes it, enough
// for the real Vault client (components/secretstores/vault) to be tested against. No Vault server
// is installable here (ARCHITECTURE §7).
//
//   vault_server --token TOKEN [--engine secret] [--seed secrets.json]
//                [--tls-cert cert.pem --tls-key key.pem]
//
// Listens on a free 127.0.0.1 port and prints "VAULT_PORT=<port>" on stdout. Plain HTTP, or
// HTTPS with the given certificate and key.
//
// API (every request needs header X-Vault-Token: TOKEN, else 403 {"errors":["permission denied"]}):
//   GET    /v1/<engine>/data/<path>[?version=N]  200
//   {"data":{"data":{..},"metadata":{"version",..}}}
//                                                404 {"errors":[]} when missing (a deleted version:
//                                                404 with data null and its metadata)
//   POST|PUT /v1/<engine>/data/<path>  {"data":{..}}  a new version; 200 {"data":{"version",..}}
//   DELETE /v1/<engine>/data/<path>    soft-deletes the latest version; 204
//   LIST   /v1/<engine>/metadata/<path>  (or GET ...?list=true) 200 {"data":{"keys":[..]}}: the
//                                        names directly below, folders ending in "/"; 404 if none
//   DELETE /v1/<engine>/metadata/<path>  removes every version; 204
//   PUT    /v1/sys/seal, /v1/sys/unseal  while sealed, every other call answers
//                                        503 {"errors":["Vault is sealed"]}
// Anything else: 404 {"errors":["no handler for route ..."]}.
//
// Seed file: {"<path>": {"k": "v"}, "<path2>": [{"v": "1"}, {"v": "2"}]} (an array seeds one
// version per element, oldest first).

#include <utility>  // before Asio/Beast: Boost 1.74 + GCC 12 in C++20 needs it first

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "nlohmann/json.hpp"

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

struct Version {
  json data;
  std::string created_time;
  std::string deletion_time;  // empty: live
};

struct Store {
  std::mutex mu;
  std::string token;
  std::string engine = "secret";
  bool sealed = false;
  std::map<std::string, std::vector<Version>> secrets;  // path → versions (index = version - 1)
};

std::string Now() {
  char buf[64];
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S.000000000Z", &tm);
  return buf;
}

std::string Unescape(std::string_view in) {
  std::string out;
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) && hex(in[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? "" : q.substr(amp + 1);
    size_t eq = pair.find('=');
    out[Unescape(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : Unescape(pair.substr(eq + 1));
  }
  return out;
}

json Metadata(const Version& v, size_t number) {
  return {{"created_time", v.created_time},
          {"custom_metadata", nullptr},
          {"deletion_time", v.deletion_time},
          {"destroyed", false},
          {"version", number}};
}

json Envelope(json data) {
  return {{"request_id", "00000000-0000-0000-0000-000000000000"},
          {"lease_id", ""},
          {"renewable", false},
          {"lease_duration", 0},
          {"data", std::move(data)},
          {"wrap_info", nullptr},
          {"warnings", nullptr},
          {"auth", nullptr}};
}

struct Reply {
  int status = 200;
  std::string body;
};

Reply Errors(int status, std::vector<std::string> errors) {
  return {status, json{{"errors", errors}}.dump()};
}

// Adds a version; the caller holds the lock.
size_t Write(Store& store, const std::string& path, json data) {
  auto& versions = store.secrets[path];
  versions.push_back({std::move(data), Now(), ""});
  return versions.size();
}

Reply Handle(Store& store, const bhttp::request<bhttp::string_body>& req) {
  std::string target(req.target());
  size_t qpos = target.find('?');
  std::string path = Unescape(std::string_view(target).substr(0, qpos));
  auto query =
      ParseQuery(qpos == std::string::npos ? "" : std::string_view(target).substr(qpos + 1));
  std::string method(req.method_string());
  auto token = req.find("X-Vault-Token");
  std::lock_guard lock(store.mu);
  if (token == req.end() || token->value() != store.token) {
    return Errors(403, {"permission denied"});
  }
  if (path == "/v1/sys/seal" && (method == "PUT" || method == "POST")) {
    store.sealed = true;
    return {204, ""};
  }
  if (path == "/v1/sys/unseal" && (method == "PUT" || method == "POST")) {
    store.sealed = false;
    return {200, json{{"sealed", false}}.dump()};
  }
  if (store.sealed) return Errors(503, {"Vault is sealed"});

  const std::string data_prefix = "/v1/" + store.engine + "/data/";
  const std::string meta_prefix = "/v1/" + store.engine + "/metadata/";
  if (path.starts_with(data_prefix)) {
    std::string name = path.substr(data_prefix.size());
    if (method == "GET") {
      auto it = store.secrets.find(name);
      if (it == store.secrets.end() || it->second.empty()) return Errors(404, {});
      size_t number = it->second.size();
      if (auto v = query.find("version"); v != query.end() && !v->second.empty()) {
        size_t asked = 0;
        auto [end, ec] =
            std::from_chars(v->second.data(), v->second.data() + v->second.size(), asked);
        if (ec != std::errc() || end != v->second.data() + v->second.size()) {
          return Errors(400, {"invalid version: " + v->second});
        }
        if (asked != 0) number = asked;
      }
      if (number > it->second.size()) return Errors(404, {});
      const Version& version = it->second[number - 1];
      if (!version.deletion_time.empty()) {
        return {404, Envelope({{"data", nullptr}, {"metadata", Metadata(version, number)}}).dump()};
      }
      return {200,
              Envelope({{"data", version.data}, {"metadata", Metadata(version, number)}}).dump()};
    }
    if (method == "POST" || method == "PUT") {
      json body = json::parse(req.body(), nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("data") ||
          !body["data"].is_object()) {
        return Errors(400, {"no data provided"});
      }
      size_t number = Write(store, name, body["data"]);
      const Version& version = store.secrets[name].back();
      return {200, Envelope(Metadata(version, number)).dump()};
    }
    if (method == "DELETE") {
      auto it = store.secrets.find(name);
      if (it != store.secrets.end() && !it->second.empty()) it->second.back().deletion_time = Now();
      return {204, ""};
    }
  }
  if (path.starts_with(meta_prefix)) {
    std::string folder = path.substr(meta_prefix.size());
    if (method == "LIST" || (method == "GET" && query["list"] == "true")) {
      if (!folder.empty() && folder.back() != '/') folder.push_back('/');
      std::set<std::string> keys;
      for (const auto& [name, versions] : store.secrets) {
        if (versions.empty() || !name.starts_with(folder)) continue;
        std::string rest = name.substr(folder.size());
        size_t slash = rest.find('/');
        keys.insert(slash == std::string::npos ? rest : rest.substr(0, slash + 1));
      }
      if (keys.empty()) return Errors(404, {});
      return {200, Envelope({{"keys", std::vector<std::string>(keys.begin(), keys.end())}}).dump()};
    }
    if (method == "DELETE") {
      store.secrets.erase(folder);
      return {204, ""};
    }
  }
  return Errors(404, {"no handler for route \"" + path + "\". route entry not found."});
}

template <typename Stream>
void Serve(Store& store, Stream& socket) {
  boost::beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (;;) {
    bhttp::request<bhttp::string_body> req;
    bhttp::read(socket, buffer, req, ec);
    if (ec) return;
    Reply reply = Handle(store, req);
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status),
                                            req.version()};
    res.set(bhttp::field::server, "remora-vault-test-server");
    if (!reply.body.empty()) res.set(bhttp::field::content_type, "application/json");
    res.body() = std::move(reply.body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    bhttp::write(socket, res, ec);
    if (ec || !req.keep_alive()) return;
  }
}

int Usage() {
  std::cerr << "usage: vault_server --token TOKEN [--engine secret] [--seed file.json] "
               "[--tls-cert cert.pem --tls-key key.pem]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Store store;
  std::string seed;
  std::string tls_cert;
  std::string tls_key;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    if (arg == "--token") {
      store.token = argv[++i];
    } else if (arg == "--engine") {
      store.engine = argv[++i];
    } else if (arg == "--seed") {
      seed = argv[++i];
    } else if (arg == "--tls-cert") {
      tls_cert = argv[++i];
    } else if (arg == "--tls-key") {
      tls_key = argv[++i];
    } else {
      return Usage();
    }
  }
  if (store.token.empty()) return Usage();
  if (!seed.empty()) {
    std::ifstream in(seed);
    json root = json::parse(in, nullptr, false);
    if (!in || root.is_discarded() || !root.is_object()) {
      std::cerr << "vault_server: " << seed << ": not a JSON object\n";
      return 2;
    }
    for (const auto& [path, value] : root.items()) {
      if (value.is_array()) {
        for (const json& v : value) Write(store, path, v);
      } else {
        Write(store, path, value);
      }
    }
  }
  std::unique_ptr<asio::ssl::context> tls;
  if (!tls_cert.empty() || !tls_key.empty()) {
    tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    tls->use_certificate_chain_file(tls_cert, ec);
    if (!ec) tls->use_private_key_file(tls_key, asio::ssl::context::pem, ec);
    if (ec) {
      std::cerr << "vault_server: TLS certificate or key: " << ec.message() << "\n";
      return 2;
    }
  }
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::printf("VAULT_PORT=%d\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) continue;
    std::thread([&store, &tls, s = std::move(socket)]() mutable {
      if (!tls) return Serve(store, s);
      asio::ssl::stream<tcp::socket&> stream(s, *tls);
      boost::system::error_code ec;
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (!ec) Serve(store, stream);
    }).detach();
  }
}
