#include "remora/components/common/redis/client.h"

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cctype>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "remora/components/common/strings.h"

namespace remora::redis {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Strand = asio::strand<asio::io_context::executor_type>;

constexpr int kMaxPoolSize = 16;
// A connection that stayed up this long is reconnected at once when it drops (Redis restarted or
// failed over); one that drops sooner waits the backoff, so a server that accepts and then closes
// every connection is not hammered.
constexpr milliseconds kStableConnection{1000};
constexpr Clock::time_point kNever = Clock::time_point::max();

// Everything the connections of one Client share. Immutable after construction, except the
// strand, which is thread-safe.
struct Shared {
  Shared(asio::io_context& io, Settings s)
      : strand(asio::make_strand(io)), settings(std::move(s)), address(settings.Address()) {}
  Strand strand;
  Settings settings;
  std::string address;
};

absl::Status Error(absl::StatusCode code, const Shared& shared, std::string_view what) {
  return MakeStatus(code, StrCat("redis ", shared.address, ": ", what));
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Millis(milliseconds ms) { return StrCat(static_cast<int64_t>(ms.count()), "ms"); }

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

std::string_view StrOf(const redisReply* r) {
  if (r == nullptr || r->str == nullptr) return {};
  return std::string_view(r->str, r->len);
}

// One user request on its way to a connection: a single command or a pipeline.
struct Request {
  std::vector<Args> commands;
  Callback<Reply> single;               // set for Command
  Callback<std::vector<Reply>> batch;   // set for Pipeline
  Clock::time_point deadline = kNever;  // for the reply of every command
  milliseconds timeout{0};              // for messages
};

// The replies of one pipeline, collected until the last arrives.
struct Batch {
  Callback<std::vector<Reply>> done;
  std::vector<Reply> replies;
  size_t remaining = 0;
  bool finished = false;
};

// A command written to hiredis whose reply has not arrived. hiredis calls back in the same
// order, so the front of the queue always belongs to the next reply.
struct Pending {
  enum class Kind : uint8_t { kHandshake, kSingle, kBatch };
  Kind kind = Kind::kSingle;
  bool timed_out = false;
  const char* what = "";  // handshake step, for messages
  Clock::time_point deadline = kNever;
  milliseconds timeout{0};
  Callback<Reply> single;
  std::shared_ptr<Batch> batch;
  size_t index = 0;
};

// Completes a request with an error. Always posted: a failure may be detected inside hiredis or
// inside Command(), and callers must never be re-entered from either.
void FailRequest(const Shared& shared, Request request, absl::Status status) {
  if (request.single) {
    asio::post(shared.strand,
               [done = std::move(request.single), status]() mutable { std::move(done)(status); });
  } else if (request.batch) {
    asio::post(shared.strand,
               [done = std::move(request.batch), status]() mutable { std::move(done)(status); });
  }
}

// Who hears about a connection's state: the subscription that owns it.
class ConnListener {
 public:
  virtual ~ConnListener() = default;
  virtual void OnConnReady() = 0;
  virtual void OnConnDown(const absl::Status& status) = 0;
  virtual void OnConnMessage(const Message& message) = 0;
};

// One Redis connection that keeps itself connected: a hiredis async context driven by Asio on
// the client's strand, re-created with backoff whenever it is lost. Every method except Health()
// runs on the strand.
//
// hiredis owns the socket: Asio only waits for readiness on it (stream_descriptor::async_wait)
// and releases it in hiredis' cleanup hook, before hiredis closes it.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(std::shared_ptr<const Shared> shared, std::optional<SubscribeRequest> subscribe)
      : shared_(std::move(shared)),
        sub_(std::move(subscribe)),
        health_(Error(absl::StatusCode::kUnavailable, *shared_, "connecting")),
        timer_(shared_->strand),
        deadline_timer_(shared_->strand),
        resolver_(shared_->strand) {}

  ~Conn() {
    // Only reached when the io_context dropped our handlers without running them (it was
    // destroyed first): free silently, there is no loop left to report on.
    state_ = State::kClosed;
    silent_ = true;
    if (ac_ != nullptr) redisAsyncFree(ac_);
  }

  void SetListener(std::weak_ptr<ConnListener> listener) { listener_ = std::move(listener); }

  void Start() {
    if (state_ == State::kNew) Connect();
  }

  // Final: fails everything pending with `reason` and stops reconnecting.
  void Close(absl::Status reason) {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    listener_.reset();
    ++timer_seq_;
    ++deadline_seq_;
    ++attempt_;
    timer_.cancel();
    deadline_timer_.cancel();
    resolver_.cancel();
    SetHealth(reason);
    FailWaiting(reason);
    if (ac_ != nullptr) {
      close_reason_ = reason;
      redisAsyncFree(ac_);  // pending callbacks fail with close_reason_ (deferred in a callback)
    }
  }

  // The routing rule of the header: ready → send; first attempt (or a reconnect that has not
  // failed yet) → wait for it; otherwise fail fast with the last error.
  void Submit(Request request) {
    if (state_ == State::kClosed) {
      FailRequest(*shared_, std::move(request),
                  Error(absl::StatusCode::kCancelled, *shared_, "connection closed"));
    } else if (ready()) {
      Send(std::move(request));
    } else if (accepting_waiters()) {
      Enqueue(std::move(request));
    } else {
      FailRequest(*shared_, std::move(request), last_error_);
    }
  }

  bool ready() const { return state_ == State::kReady; }
  bool accepting_waiters() const {
    return (state_ == State::kNew || state_ == State::kConnecting) && last_error_.ok();
  }
  const absl::Status& last_error() const { return last_error_; }

  absl::Status Health() const {
    std::lock_guard lock(health_mu_);
    return health_;
  }

  void Send(Request request) {
    if (request.batch) {
      auto batch = std::make_shared<Batch>();
      batch->done = std::move(request.batch);
      batch->replies.resize(request.commands.size());
      batch->remaining = request.commands.size();
      for (size_t i = 0; i < request.commands.size(); ++i) {
        Pending p;
        p.kind = Pending::Kind::kBatch;
        p.deadline = request.deadline;
        p.timeout = request.timeout;
        p.batch = batch;
        p.index = i;
        if (!Write(request.commands[i], std::move(p))) {
          // Commands already written fail through hiredis' callbacks and find `finished`.
          batch->finished = true;
          Request failed;
          failed.batch = std::move(batch->done);
          FailRequest(*shared_, std::move(failed), GoneStatus());
          return;
        }
      }
      return;
    }
    Pending p;
    p.kind = Pending::Kind::kSingle;
    p.deadline = request.deadline;
    p.timeout = request.timeout;
    p.single = std::move(request.single);
    if (!Write(request.commands[0], std::move(p))) {
      // Write() failed only if hiredis refused the command, so `p` was not moved from.
      Request failed;
      failed.single = std::move(p.single);
      FailRequest(*shared_, std::move(failed), GoneStatus());
    }
  }

  void Enqueue(Request request) {
    NoteDeadline(request.deadline);
    waiting_.push_back(std::move(request));
  }

 private:
  enum class State { kNew, kConnecting, kReady, kDropping, kBackoff, kClosed };

  // --- hiredis hooks (C callbacks; privdata/ev.data is the Conn) ---
  static void HiAddRead(void* p) { static_cast<Conn*>(p)->AddRead(); }
  static void HiDelRead(void* p) { static_cast<Conn*>(p)->want_read_ = false; }
  static void HiAddWrite(void* p) { static_cast<Conn*>(p)->AddWrite(); }
  static void HiDelWrite(void* p) { static_cast<Conn*>(p)->want_write_ = false; }
  static void HiCleanup(void* p) { static_cast<Conn*>(p)->OnContextGone(); }
  static void HiReply(redisAsyncContext*, void* reply, void* p) {
    static_cast<Conn*>(p)->OnReply(static_cast<redisReply*>(reply));
  }
  static void HiPush(redisAsyncContext*, void* reply, void* p) {
    static_cast<Conn*>(p)->OnPush(static_cast<redisReply*>(reply));
  }

  // --- connecting ---
  void Connect() {
    state_ = State::kConnecting;
    const uint64_t attempt = ++attempt_;
    const Settings& s = shared_->settings;
    if (s.dial_timeout.count() > 0) {
      ArmTimer(s.dial_timeout, [this, attempt] {
        if (attempt != attempt_ || state_ != State::kConnecting) return;
        absl::Status st = Error(
            absl::StatusCode::kUnavailable, *shared_,
            StrCat("no connection within dialTimeout ", Millis(shared_->settings.dial_timeout)));
        if (ac_ != nullptr) {
          DropContext(std::move(st));
        } else {
          resolver_.cancel();
          Down(std::move(st), false);
        }
      });
    }
    boost::system::error_code ec;
    asio::ip::address address = asio::ip::make_address(s.host, ec);
    if (!ec) {
      ConnectTo(address);
      return;
    }
    // A name: resolve off the loop (Asio's resolver thread), then connect to the address, so
    // hiredis' own blocking getaddrinfo never runs on the event loop.
    resolver_.async_resolve(
        s.host, std::to_string(s.port),
        [self = shared_from_this(), attempt](const boost::system::error_code& ec,
                                             asio::ip::tcp::resolver::results_type results) {
          if (attempt != self->attempt_ || self->state_ != State::kConnecting) return;
          if (ec || results.empty()) {
            self->Down(Error(absl::StatusCode::kUnavailable, *self->shared_,
                             StrCat("cannot resolve ", self->shared_->settings.host, ": ",
                                    ec ? ec.message() : std::string("no address"))),
                       false);
            return;
          }
          // hiredis prefers IPv4 as well; "localhost" often lists ::1 first.
          asio::ip::address chosen = results.begin()->endpoint().address();
          for (const auto& entry : results) {
            if (entry.endpoint().address().is_v4()) {
              chosen = entry.endpoint().address();
              break;
            }
          }
          self->ConnectTo(chosen);
        });
  }

  void ConnectTo(const asio::ip::address& address) {
    const Settings& s = shared_->settings;
    redisAsyncContext* ac = redisAsyncConnect(address.to_string().c_str(), s.port);
    if (ac == nullptr) {
      Down(Error(absl::StatusCode::kUnavailable, *shared_, "out of memory"), false);
      return;
    }
    if (ac->err != 0) {  // e.g. refused at once on loopback
      std::string err = ac->errstr;
      redisAsyncFree(ac);
      Down(Error(absl::StatusCode::kUnavailable, *shared_, err), false);
      return;
    }
    sd_.emplace(shared_->strand);
    boost::system::error_code ec;
    sd_->assign(ac->c.fd, ec);
    if (ec) {
      sd_.reset();
      redisAsyncFree(ac);
      Down(Error(absl::StatusCode::kUnavailable, *shared_, StrCat("event loop: ", ec.message())),
           false);
      return;
    }
    ac_ = ac;
    ++gen_;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = &HiAddRead;
    ac->ev.delRead = &HiDelRead;
    ac->ev.addWrite = &HiAddWrite;
    ac->ev.delWrite = &HiDelWrite;
    ac->ev.cleanup = &HiCleanup;
    redisEnableKeepAlive(&ac->c);  // a vanished peer is noticed even on an idle connection

    // AUTH and SELECT go first on every connection; user commands wait in waiting_ until they
    // succeed, so nothing ever runs unauthenticated or in the wrong database.
    handshake_left_ = 0;
    auto step = [this](Args args, const char* what) {
      Pending p;
      p.kind = Pending::Kind::kHandshake;
      p.what = what;
      if (Write(args, std::move(p))) ++handshake_left_;
    };
    if (!s.password.empty()) {
      step(s.username.empty() ? Args{"AUTH", s.password} : Args{"AUTH", s.username, s.password},
           "AUTH");
    }
    if (s.db != 0) step({"SELECT", std::to_string(s.db)}, "SELECT");
    if (handshake_left_ == 0) step({"PING"}, "PING");  // proves the server answers
  }

  void OnHandshakeReply(const Pending& p, const redisReply* r) {
    if (r->type == REDIS_REPLY_ERROR) {
      std::string err(StrOf(r));
      std::string hint;
      if (err.rfind("NOAUTH", 0) == 0) hint = " (the server requires redisPassword)";
      DropContext(
          Error(absl::StatusCode::kUnavailable, *shared_, StrCat(p.what, " failed: ", err, hint)));
      return;
    }
    if (--handshake_left_ > 0) return;
    if (sub_) {
      SendSubscribe();
    } else {
      OnReady();
    }
  }

  void SendSubscribe() {
    std::set<std::string> channels(sub_->channels.begin(), sub_->channels.end());
    std::set<std::string> patterns(sub_->patterns.begin(), sub_->patterns.end());
    confirmations_left_ = channels.size() + patterns.size();
    auto send = [this](const char* verb, const std::set<std::string>& names) {
      if (names.empty()) return true;
      Args args{verb};
      args.insert(args.end(), names.begin(), names.end());
      return WriteRaw(args, &HiPush);
    };
    if (!send("SUBSCRIBE", channels) || !send("PSUBSCRIBE", patterns)) {
      DropContext(GoneStatus());
    }
  }

  void OnReady() {
    state_ = State::kReady;
    ready_since_ = Clock::now();
    failures_ = 0;
    last_error_ = absl::OkStatus();
    SetHealth(absl::OkStatus());
    ++timer_seq_;
    timer_.cancel();
    std::deque<Request> waiting = std::move(waiting_);
    waiting_.clear();
    for (Request& r : waiting) Send(std::move(r));
    if (auto listener = listener_.lock()) listener->OnConnReady();
  }

  // The connection is gone (or never came up): report, fail what waits, reconnect later.
  void Down(absl::Status status, bool was_ready) {
    if (state_ == State::kClosed) return;
    state_ = State::kBackoff;
    last_error_ = status;
    SetHealth(status);
    FailWaiting(status);
    confirmations_left_ = 0;
    if (auto listener = listener_.lock()) listener->OnConnDown(status);

    milliseconds delay;
    if (was_ready && Clock::now() - ready_since_ >= kStableConnection) {
      delay = milliseconds(0);
    } else {
      const Settings& s = shared_->settings;
      milliseconds lo = std::max(s.min_retry_interval, milliseconds(1));
      milliseconds hi = std::max(s.max_retry_interval, lo);
      delay = lo;
      for (int i = 0; i < failures_ && delay < hi; ++i) delay *= 2;
      delay = std::min(delay, hi);
      ++failures_;
    }
    ArmTimer(delay, [this] {
      if (state_ == State::kBackoff) Connect();
    });
  }

  // Closes the current context and lets Down() reconnect. Inside a hiredis callback the free is
  // deferred by hiredis until the callback returns.
  void DropContext(absl::Status reason) {
    if (ac_ == nullptr || state_ == State::kDropping || state_ == State::kClosed) return;
    was_ready_on_drop_ = state_ == State::kReady;
    state_ = State::kDropping;
    close_reason_ = std::move(reason);
    redisAsyncFree(ac_);
  }

  // hiredis' cleanup hook: the context is being freed (its pending callbacks already ran); the
  // socket is still open and closes right after we return.
  void OnContextGone() {
    if (ac_ == nullptr) return;
    std::string err = ac_->err != 0 ? std::string(ac_->errstr) : std::string();
    while (!sent_.empty()) OnReply(nullptr);  // hiredis already failed them; never leak one
    if (sd_) {
      sd_->release();  // cancels our waits; hiredis closes the fd
      sd_.reset();
    }
    ac_ = nullptr;
    ++gen_;
    want_read_ = want_write_ = read_armed_ = write_armed_ = flush_posted_ = in_write_ = false;
    handshake_left_ = 0;
    absl::Status status = close_reason_;
    close_reason_ = absl::OkStatus();
    if (silent_ || state_ == State::kClosed) return;
    if (status.ok()) {
      status = Error(absl::StatusCode::kUnavailable, *shared_,
                     err.empty() ? std::string("connection closed") : err);
    }
    bool was_ready = state_ == State::kReady || (state_ == State::kDropping && was_ready_on_drop_);
    Down(std::move(status), was_ready);
  }

  // --- I/O readiness ---
  void AddRead() {
    want_read_ = true;
    ArmRead();
  }

  void ArmRead() {
    if (read_armed_ || !sd_) return;
    read_armed_ = true;
    sd_->async_wait(asio::posix::stream_descriptor::wait_read,
                    [self = shared_from_this(), gen = gen_](const boost::system::error_code& ec) {
                      if (gen != self->gen_) return;
                      self->read_armed_ = false;
                      if (ec || self->ac_ == nullptr || !self->want_read_) return;
                      redisAsyncHandleRead(self->ac_);
                      if (gen == self->gen_ && self->want_read_) self->ArmRead();
                    });
  }

  void AddWrite() {
    if (!want_write_) {
      want_write_ = true;
      write_since_ = Clock::now();
      if (shared_->settings.write_timeout.count() > 0) {
        NoteDeadline(write_since_ + shared_->settings.write_timeout);
      }
    }
    if (ac_ != nullptr && (ac_->c.flags & REDIS_CONNECTED) != 0) {
      // The socket is almost always writable: flush once after the current handler instead of
      // asking epoll first. Every command queued until then goes out in the same write.
      if (!flush_posted_ && !write_armed_ && !in_write_) {
        flush_posted_ = true;
        asio::post(shared_->strand, [self = shared_from_this(), gen = gen_] {
          if (gen != self->gen_) return;
          self->flush_posted_ = false;
          self->HandleWrite(gen);
        });
      }
    } else {
      ArmWrite();  // still connecting: writability reports the connect result
    }
  }

  void ArmWrite() {
    if (write_armed_ || !sd_) return;
    write_armed_ = true;
    sd_->async_wait(asio::posix::stream_descriptor::wait_write,
                    [self = shared_from_this(), gen = gen_](const boost::system::error_code& ec) {
                      if (gen != self->gen_) return;
                      self->write_armed_ = false;
                      if (ec) return;
                      self->HandleWrite(gen);
                    });
  }

  void HandleWrite(uint64_t gen) {
    if (ac_ == nullptr || !want_write_) return;
    in_write_ = true;  // a partial write re-adds write interest: wait for epoll, do not re-post
    redisAsyncHandleWrite(ac_);
    if (gen != gen_) return;
    in_write_ = false;
    if (want_write_) ArmWrite();
  }

  // --- commands ---
  bool WriteRaw(const Args& args, redisCallbackFn* fn) {
    constexpr size_t kInline = 16;
    const char* argv_inline[kInline];
    size_t len_inline[kInline];
    std::vector<const char*> argv_heap;
    std::vector<size_t> len_heap;
    const char** argv = argv_inline;
    size_t* lens = len_inline;
    if (args.size() > kInline) {
      argv_heap.resize(args.size());
      len_heap.resize(args.size());
      argv = argv_heap.data();
      lens = len_heap.data();
    }
    for (size_t i = 0; i < args.size(); ++i) {
      argv[i] = args[i].data();
      lens[i] = args[i].size();
    }
    return redisAsyncCommandArgv(ac_, fn, this, static_cast<int>(args.size()), argv, lens) ==
           REDIS_OK;
  }

  bool Write(const Args& args, Pending&& p) {
    if (ac_ == nullptr || !WriteRaw(args, &HiReply)) return false;
    if (p.kind != Pending::Kind::kHandshake) NoteDeadline(p.deadline);
    sent_.push_back(std::move(p));
    return true;
  }

  void OnReply(redisReply* r) {
    if (sent_.empty()) return;
    Pending p = std::move(sent_.front());
    sent_.pop_front();
    if (silent_) return;
    if (r == nullptr) {  // the context is being freed
      if (p.kind == Pending::Kind::kHandshake) return;
      absl::Status status = p.timed_out ? Error(absl::StatusCode::kDeadlineExceeded, *shared_,
                                                StrCat("no reply within ", Millis(p.timeout)))
                                        : GoneStatus();
      FailPending(std::move(p), std::move(status));
      return;
    }
    switch (p.kind) {
      case Pending::Kind::kHandshake:
        OnHandshakeReply(p, r);
        break;
      case Pending::Kind::kSingle:
        std::move(p.single)(Convert(r));
        break;
      case Pending::Kind::kBatch: {
        Batch& b = *p.batch;
        if (b.finished) break;
        b.replies[p.index] = Convert(r);
        if (--b.remaining == 0) {
          b.finished = true;
          std::move(b.done)(std::move(b.replies));
        }
        break;
      }
    }
  }

  void FailPending(Pending p, absl::Status status) {
    Request r;
    if (p.kind == Pending::Kind::kSingle) {
      r.single = std::move(p.single);
    } else if (p.kind == Pending::Kind::kBatch) {
      if (p.batch->finished) return;
      p.batch->finished = true;
      r.batch = std::move(p.batch->done);
    }
    FailRequest(*shared_, std::move(r), std::move(status));
  }

  void FailWaiting(const absl::Status& status) {
    std::deque<Request> waiting = std::move(waiting_);
    waiting_.clear();
    for (Request& r : waiting) FailRequest(*shared_, std::move(r), status);
  }

  absl::Status GoneStatus() const {
    if (!close_reason_.ok()) return close_reason_;
    if (ac_ != nullptr && ac_->err != 0) {
      return Error(absl::StatusCode::kUnavailable, *shared_,
                   StrCat("connection lost: ", std::string_view(ac_->errstr)));
    }
    return Error(absl::StatusCode::kUnavailable, *shared_, "connection lost");
  }

  // --- subscriptions ---
  void OnPush(redisReply* r) {
    if (r == nullptr || silent_ || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    std::string kind = Upper(StrOf(r->element[0]));
    if (kind == "MESSAGE") {
      Message m;
      m.channel = StrOf(r->element[1]);
      m.payload = StrOf(r->element[2]);
      if (auto listener = listener_.lock()) listener->OnConnMessage(m);
    } else if (kind == "PMESSAGE" && r->elements >= 4) {
      Message m;
      m.pattern = StrOf(r->element[1]);
      m.channel = StrOf(r->element[2]);
      m.payload = StrOf(r->element[3]);
      if (auto listener = listener_.lock()) listener->OnConnMessage(m);
    } else if (kind == "SUBSCRIBE" || kind == "PSUBSCRIBE") {
      if (state_ == State::kConnecting && confirmations_left_ > 0 && --confirmations_left_ == 0) {
        OnReady();
      }
    }
  }

  // --- deadlines ---
  // One timer per connection, armed at the earliest deadline known; when it fires, everything is
  // rechecked and it is re-armed. Deadlines mostly grow, so a busy connection re-arms about once
  // per readTimeout, not once per command.
  void NoteDeadline(Clock::time_point at) {
    if (at >= deadline_armed_at_) return;
    deadline_armed_at_ = at;
    deadline_timer_.expires_at(at);
    deadline_timer_.async_wait(
        [self = shared_from_this(), seq = ++deadline_seq_](const boost::system::error_code&) {
          if (seq != self->deadline_seq_) return;
          self->deadline_armed_at_ = kNever;
          self->CheckDeadlines();
        });
  }

  void CheckDeadlines() {
    if (state_ == State::kClosed) return;
    const Clock::time_point now = Clock::now();
    Clock::time_point next = kNever;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->deadline <= now) {
        absl::Status status = Error(absl::StatusCode::kDeadlineExceeded, *shared_,
                                    StrCat("still connecting after ", Millis(it->timeout)));
        FailRequest(*shared_, std::move(*it), std::move(status));
        it = waiting_.erase(it);
      } else {
        next = std::min(next, it->deadline);
        ++it;
      }
    }
    // Redis answers in order: a command without a reply blocks everything behind it on this
    // connection, so the connection is replaced (as go-redis discards a connection on timeout).
    bool expired = false;
    for (Pending& p : sent_) {
      if (p.kind == Pending::Kind::kHandshake) continue;
      if (p.deadline <= now) {
        p.timed_out = true;
        expired = true;
      } else {
        next = std::min(next, p.deadline);
      }
    }
    const milliseconds write_timeout = shared_->settings.write_timeout;
    if (want_write_ && write_timeout.count() > 0) {
      if (write_since_ + write_timeout <= now) {
        for (Pending& p : sent_) {
          if (p.kind != Pending::Kind::kHandshake) {
            p.timed_out = true;
            p.timeout = write_timeout;
          }
        }
        expired = true;
      } else {
        next = std::min(next, write_since_ + write_timeout);
      }
    }
    if (expired && ac_ != nullptr) {
      DropContext(Error(absl::StatusCode::kUnavailable, *shared_,
                        "connection reset: an earlier command on it timed out"));
      return;
    }
    if (next != kNever) NoteDeadline(next);
  }

  // --- helpers ---
  template <typename F>
  void ArmTimer(milliseconds delay, F f) {
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this(), seq = ++timer_seq_,
                       f = std::move(f)](const boost::system::error_code& ec) {
      if (ec || seq != self->timer_seq_) return;
      f();
    });
  }

  void SetHealth(absl::Status status) {
    std::lock_guard lock(health_mu_);
    health_ = std::move(status);
  }

  const std::shared_ptr<const Shared> shared_;
  const std::optional<SubscribeRequest> sub_;
  std::weak_ptr<ConnListener> listener_;

  State state_ = State::kNew;
  absl::Status last_error_;    // OK until an attempt fails; OK again once connected
  absl::Status close_reason_;  // why we freed the context ourselves
  bool silent_ = false;        // destructor: drop callbacks without running them
  bool was_ready_on_drop_ = false;
  Clock::time_point ready_since_;
  int failures_ = 0;  // consecutive failed attempts, for the backoff
  uint64_t attempt_ = 0;

  redisAsyncContext* ac_ = nullptr;
  uint64_t gen_ = 0;  // bumped per context: stale Asio completions compare and leave
  std::optional<asio::posix::stream_descriptor> sd_;
  bool want_read_ = false, want_write_ = false;
  bool read_armed_ = false, write_armed_ = false, flush_posted_ = false, in_write_ = false;
  Clock::time_point write_since_;

  int handshake_left_ = 0;
  size_t confirmations_left_ = 0;
  std::deque<Pending> sent_;
  std::deque<Request> waiting_;  // accepted while the first connection attempt runs

  mutable std::mutex health_mu_;
  absl::Status health_;

  asio::steady_timer timer_;  // dial timeout, then reconnect backoff
  uint64_t timer_seq_ = 0;
  asio::steady_timer deadline_timer_;
  uint64_t deadline_seq_ = 0;
  Clock::time_point deadline_armed_at_ = kNever;
  asio::ip::tcp::resolver resolver_;
};

// Commands that change the state of the connection they run on. On a shared connection they
// would leak into other callers' commands.
absl::Status CheckCommand(const Args& args, bool shared_connection, bool in_pipeline) {
  if (args.empty()) return absl::InvalidArgumentError("redis: empty command");
  static const std::set<std::string, std::less<>> kConnectionState = {
      "SUBSCRIBE",    "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
      "SUNSUBSCRIBE", "MONITOR",    "SELECT",     "QUIT",        "RESET"};
  static const std::set<std::string, std::less<>> kTransaction = {"MULTI", "EXEC", "DISCARD",
                                                                  "WATCH", "UNWATCH"};
  std::string name = Upper(args[0]);
  if (kConnectionState.contains(name)) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("redis: ", name,
                             " changes the connection; use Client::Subscribe for pub/sub "
                             "(SELECT: set redisDB)"));
  }
  if (shared_connection && !in_pipeline && kTransaction.contains(name)) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat("redis: ", name, " on a shared connection; send the transaction with Pipeline"));
  }
  return absl::OkStatus();
}

Clock::time_point DeadlineOf(const Settings& s, std::optional<milliseconds> timeout,
                             milliseconds* effective) {
  milliseconds t = timeout.value_or(s.read_timeout);
  if (t.count() == 0) t = s.read_timeout;
  *effective = t;
  if (t.count() < 0) return kNever;
  return Clock::now() + t;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings

std::string Settings::Address() const {
  if (host.find(':') != std::string::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

namespace {

absl::Status Invalid(std::string_view message) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, message);
}

std::optional<int> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  int port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) return std::nullopt;
  return port;
}

// "host", "host:port", "[v6]", "[v6]:port", or a bare IPv6 address.
absl::Status ParseHost(std::string_view raw, std::optional<int> default_port, Settings* s) {
  std::string_view text = Sv(absl::StripAsciiWhitespace(Sv(raw)));
  if (text.empty()) return Invalid("redis: redisHost is required (host:port)");
  if (text.find(',') != std::string_view::npos) {
    return Invalid(StrCat("redis: redisHost \"", text,
                          "\" lists several hosts; cluster and sentinel are not supported, give "
                          "one host:port"));
  }
  if (text.find('/') != std::string_view::npos || text.find('@') != std::string_view::npos) {
    return Invalid(StrCat("redis: redisHost \"", text,
                          "\" must be host:port, not a URL (credentials go in redisUsername and "
                          "redisPassword)"));
  }
  std::string_view host = text;
  std::optional<std::string_view> port_text;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos)
      return Invalid(StrCat("redis: bad redisHost \"", text, "\""));
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Invalid(StrCat("redis: bad redisHost \"", text, "\""));
      port_text = rest.substr(1);
    }
  } else if (size_t colon = text.find(':'); colon != std::string_view::npos &&
                                            text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) return Invalid(StrCat("redis: redisHost \"", text, "\" has no host"));
  s->host = std::string(host);
  if (port_text) {
    std::optional<int> port = ParsePort(*port_text);
    if (!port) {
      return Invalid(
          StrCat("redis: redisHost \"", text, "\": \"", *port_text, "\" is not a port (1-65535)"));
    }
    s->port = *port;
  } else {
    s->port = default_port.value_or(6379);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Settings> ParseSettings(const components::Metadata& md, const Settings& defaults) {
  Settings s = defaults;

  std::optional<int> default_port;
  if (std::optional<std::string> port = md.Get("redisPort"); port && !port->empty()) {
    default_port = ParsePort(Sv(absl::StripAsciiWhitespace(*port)));
    if (!default_port) {
      return Invalid(StrCat("redis: redisPort \"", *port, "\" is not a port (1-65535)"));
    }
  }
  std::optional<std::string> host = md.Get("redisHost");
  if (!host) return Invalid("redis: redisHost is required (host:port)");
  if (absl::Status st = ParseHost(*host, default_port, &s); !st.ok()) return st;

  s.username = md.GetString("redisUsername", defaults.username);
  s.password = md.GetString("redisPassword", defaults.password);

  absl::StatusOr<int64_t> db = md.GetInt("redisDB", defaults.db);
  if (!db.ok()) return db.status();
  if (*db < 0 || *db > std::numeric_limits<int>::max()) {
    return Invalid(StrCat("redis: redisDB ", *db, " is not a database number"));
  }
  s.db = static_cast<int>(*db);

  std::string type = absl::AsciiStrToLower(md.GetString("redisType", "node"));
  if (type == "cluster") {
    return Invalid("redis: redisType \"cluster\" is not supported by Remora's Redis client");
  }
  if (type != "node" && !type.empty()) {
    return Invalid(StrCat("redis: redisType \"", type, "\" is not one of node, cluster"));
  }

  absl::StatusOr<bool> tls = md.GetBool("enableTLS", false);
  if (!tls.ok()) return tls.status();
  if (*tls) {
    return Invalid(
        "redis: enableTLS is not supported: Debian's hiredis 0.14 has no TLS support (use a "
        "TLS-terminating proxy such as stunnel on localhost, or a plain connection)");
  }
  absl::StatusOr<bool> failover = md.GetBool("failover", false);
  if (!failover.ok()) return failover.status();
  if (*failover) return Invalid("redis: failover (Redis Sentinel) is not supported");
  for (std::string_view key : {"useEntraID", "useAzureAD"}) {
    absl::StatusOr<bool> entra = md.GetBool(key, false);
    if (!entra.ok()) return entra.status();
    if (*entra) return Invalid(StrCat("redis: ", key, " (Azure AD tokens) is not supported"));
  }

  // Durations: absent or 0 keeps the default (go-redis does the same); negative disables.
  auto duration = [&md](std::string_view key,
                        milliseconds fallback) -> absl::StatusOr<milliseconds> {
    absl::StatusOr<milliseconds> d = md.GetDuration(key, fallback);
    if (d.ok() && d->count() == 0) return fallback;
    return d;
  };
  absl::StatusOr<milliseconds> dial = duration("dialTimeout", defaults.dial_timeout);
  if (!dial.ok()) return dial.status();
  s.dial_timeout = *dial;
  absl::StatusOr<milliseconds> read = duration("readTimeout", defaults.read_timeout);
  if (!read.ok()) return read.status();
  s.read_timeout = *read;
  absl::StatusOr<milliseconds> write = duration("writeTimeout", s.read_timeout);  // go-redis
  if (!write.ok()) return write.status();
  s.write_timeout = *write;

  auto first_present = [&md](std::initializer_list<std::string_view> keys) -> std::string_view {
    for (std::string_view key : keys) {
      if (md.Get(key)) return key;
    }
    return *keys.begin();
  };
  absl::StatusOr<int64_t> retries =
      md.GetInt(first_present({"redisMaxRetries", "maxRetries"}), defaults.max_retries);
  if (!retries.ok()) return retries.status();
  s.max_retries = static_cast<int>(std::clamp<int64_t>(*retries, -1, 1000));
  absl::StatusOr<milliseconds> min_retry = duration(
      first_present({"redisMinRetryInterval", "maxRetryBackoff"}), defaults.min_retry_interval);
  if (!min_retry.ok()) return min_retry.status();
  s.min_retry_interval = *min_retry;
  absl::StatusOr<milliseconds> max_retry =
      duration("redisMaxRetryInterval", defaults.max_retry_interval);
  if (!max_retry.ok()) return max_retry.status();
  s.max_retry_interval = *max_retry;

  absl::StatusOr<int64_t> pool = md.GetInt("poolSize", defaults.pool_size);
  if (!pool.ok()) return pool.status();
  if (*pool <= 0) {
    s.pool_size = defaults.pool_size;
  } else {
    s.pool_size = static_cast<int>(std::min<int64_t>(*pool, kMaxPoolSize));
  }

  // go-redis pool tuning and settings of modes we refuse above: read so they are not reported
  // as unknown keys, but they change nothing here.
  for (std::string_view key :
       {"minIdleConns", "maxConnAge", "poolTimeout", "idleTimeout", "idleCheckFrequency",
        "sentinelUsername", "sentinelPassword", "sentinelMasterName", "insecureSkipTLSVerify",
        "clientCert", "clientKey"}) {
    md.MarkUsed(key);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Reply

namespace {
void AppendDebug(const Reply& r, std::string* out) {
  switch (r.type) {
    case Reply::Type::kNil:
      out->append("(nil)");
      break;
    case Reply::Type::kStatus:
      out->append(r.str);
      break;
    case Reply::Type::kError:
      StrAppend(out, "(error) ", r.str);
      break;
    case Reply::Type::kInteger:
      StrAppend(out, r.integer);
      break;
    case Reply::Type::kString:
      out->push_back('"');
      for (unsigned char c : r.str) {
        if (c == '"' || c == '\\') {
          out->push_back('\\');
          out->push_back(static_cast<char>(c));
        } else if (c >= 0x20 && c < 0x7f) {
          out->push_back(static_cast<char>(c));
        } else {
          static const char kHex[] = "0123456789abcdef";
          StrAppend(out, "\\x", kHex[c >> 4], kHex[c & 15]);
        }
      }
      out->push_back('"');
      break;
    case Reply::Type::kArray:
      out->push_back('[');
      for (size_t i = 0; i < r.elements.size(); ++i) {
        if (i > 0) out->append(", ");
        AppendDebug(r.elements[i], out);
      }
      out->push_back(']');
      break;
  }
}
}  // namespace

std::string Reply::DebugString() const {
  std::string out;
  AppendDebug(*this, &out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Client

class Client::Pool {
 public:
  Pool(asio::io_context& io, Settings settings)
      : shared_(std::make_shared<Shared>(io, std::move(settings))) {
    const int n = std::clamp(shared_->settings.pool_size, 1, kMaxPoolSize);
    for (int i = 0; i < n; ++i) conns_.push_back(std::make_shared<Conn>(shared_, std::nullopt));
  }

  const std::shared_ptr<Shared>& shared() const { return shared_; }

  void Start() {
    for (auto& c : conns_) c->Start();
  }

  // Round robin over ready connections; see Conn::Submit for the rule when none is ready.
  void Submit(Request request) {
    if (closed_) {
      FailRequest(*shared_, std::move(request),
                  Error(absl::StatusCode::kCancelled, *shared_, "client destroyed"));
      return;
    }
    const size_t n = conns_.size();
    for (size_t i = 0; i < n; ++i) {
      Conn& c = *conns_[(next_ + i) % n];
      if (c.ready()) {
        next_ = (next_ + i + 1) % n;
        c.Send(std::move(request));
        return;
      }
    }
    for (auto& c : conns_) {
      if (c->accepting_waiters()) {
        c->Enqueue(std::move(request));
        return;
      }
    }
    absl::Status status = conns_.front()->last_error();
    if (status.ok()) status = Error(absl::StatusCode::kUnavailable, *shared_, "not connected");
    FailRequest(*shared_, std::move(request), std::move(status));
  }

  void Shutdown() {
    closed_ = true;
    for (auto& c : conns_)
      c->Close(Error(absl::StatusCode::kCancelled, *shared_, "client destroyed"));
  }

  absl::Status Health() const {
    absl::Status first;
    for (const auto& c : conns_) {
      absl::Status st = c->Health();
      if (st.ok()) return st;
      if (first.ok()) first = st;
    }
    return first;
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::vector<std::shared_ptr<Conn>> conns_;  // fixed after construction (Health reads it)
  size_t next_ = 0;
  bool closed_ = false;
};

Client::Client(asio::io_context& io, Settings settings)
    : settings_(settings), pool_(std::make_shared<Pool>(io, std::move(settings))) {
  asio::post(pool_->shared()->strand, [pool = pool_] { pool->Start(); });
}

Client::~Client() {
  // Posted, never inline: the destructor may run inside one of our own callbacks.
  asio::post(pool_->shared()->strand, [pool = pool_] { pool->Shutdown(); });
}

void Client::Command(Args args, Callback<Reply> done, std::optional<milliseconds> timeout) {
  Request r;
  r.single = std::move(done);
  if (absl::Status st = CheckCommand(args, true, false); !st.ok()) {
    FailRequest(*pool_->shared(), std::move(r), std::move(st));
    return;
  }
  r.deadline = DeadlineOf(settings_, timeout, &r.timeout);
  r.commands.push_back(std::move(args));
  asio::dispatch(pool_->shared()->strand,
                 [pool = pool_, r = std::move(r)]() mutable { pool->Submit(std::move(r)); });
}

void Client::Pipeline(std::vector<Args> commands, Callback<std::vector<Reply>> done,
                      std::optional<milliseconds> timeout) {
  Request r;
  r.batch = std::move(done);
  absl::Status st =
      commands.empty() ? absl::InvalidArgumentError("redis: empty pipeline") : absl::OkStatus();
  for (const Args& args : commands) {
    if (!st.ok()) break;
    st = CheckCommand(args, true, true);
  }
  if (!st.ok()) {
    FailRequest(*pool_->shared(), std::move(r), std::move(st));
    return;
  }
  r.deadline = DeadlineOf(settings_, timeout, &r.timeout);
  r.commands = std::move(commands);
  asio::dispatch(pool_->shared()->strand,
                 [pool = pool_, r = std::move(r)]() mutable { pool->Submit(std::move(r)); });
}

absl::Status Client::Health() const { return pool_->Health(); }

// ---------------------------------------------------------------------------------------------
// DedicatedConnection

class DedicatedConnection::Impl {
 public:
  explicit Impl(std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)), conn_(std::make_shared<Conn>(shared_, std::nullopt)) {}
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<Conn> conn_;
};

DedicatedConnection::DedicatedConnection(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

DedicatedConnection::~DedicatedConnection() {
  asio::post(impl_->shared_->strand, [conn = impl_->conn_, shared = impl_->shared_] {
    conn->Close(Error(absl::StatusCode::kCancelled, *shared, "dedicated connection destroyed"));
  });
}

void DedicatedConnection::Command(Args args, Callback<Reply> done,
                                  std::optional<milliseconds> timeout) {
  Request r;
  r.single = std::move(done);
  if (absl::Status st = CheckCommand(args, false, false); !st.ok()) {
    FailRequest(*impl_->shared_, std::move(r), std::move(st));
    return;
  }
  r.deadline = DeadlineOf(impl_->shared_->settings, timeout, &r.timeout);
  r.commands.push_back(std::move(args));
  asio::dispatch(impl_->shared_->strand,
                 [conn = impl_->conn_, r = std::move(r)]() mutable { conn->Submit(std::move(r)); });
}

absl::Status DedicatedConnection::Health() const { return impl_->conn_->Health(); }

std::unique_ptr<DedicatedConnection> Client::Dedicated() {
  auto impl = std::make_shared<DedicatedConnection::Impl>(pool_->shared());
  asio::post(impl->shared_->strand, [conn = impl->conn_] { conn->Start(); });
  return std::unique_ptr<DedicatedConnection>(new DedicatedConnection(std::move(impl)));
}

// ---------------------------------------------------------------------------------------------
// Subscription

class Subscription::Impl : public ConnListener, public std::enable_shared_from_this<Impl> {
 public:
  Impl(std::shared_ptr<Shared> shared, SubscribeRequest request,
       absl::AnyInvocable<void(const Message&)> on_message,
       absl::AnyInvocable<void(absl::Status)> on_status)
      : shared_(std::move(shared)),
        conn_(std::make_shared<Conn>(shared_, std::move(request))),
        on_message_(std::move(on_message)),
        on_status_(std::move(on_status)) {}

  void Start() {
    conn_->SetListener(weak_from_this());
    conn_->Start();
  }

  void OnConnReady() override { Notify(absl::OkStatus()); }
  void OnConnDown(const absl::Status& status) override { Notify(status); }
  void OnConnMessage(const Message& message) override {
    Deliver([&] {
      if (on_message_) on_message_(message);
    });
  }

  // From the destructor, on any thread.
  void Close() {
    if (delivering_.load() == std::this_thread::get_id()) {
      closed_ = true;  // inside our own callback: mu_ is held by this thread already
    } else {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    asio::post(shared_->strand, [conn = conn_, shared = shared_] {
      conn->Close(Error(absl::StatusCode::kCancelled, *shared, "subscription closed"));
    });
  }

 private:
  // Reports changes only: (re)subscribed, or lost. Posted so user code never runs inside
  // hiredis' teardown of a context.
  void Notify(absl::Status status) {
    if (reported_ && reported_ok_ == status.ok()) return;
    reported_ = true;
    reported_ok_ = status.ok();
    asio::post(shared_->strand, [self = shared_from_this(), status = std::move(status)]() mutable {
      self->Deliver([&] {
        if (self->on_status_) self->on_status_(status);
      });
    });
  }

  // Runs a user callback unless closed. Holding mu_ meanwhile lets Close() from another thread
  // wait for a callback under way, so none runs after ~Subscription returns.
  template <typename F>
  void Deliver(F&& f) {
    std::lock_guard lock(mu_);
    if (closed_) return;
    delivering_.store(std::this_thread::get_id());
    f();
    delivering_.store(std::thread::id());
  }

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<Conn> conn_;
  absl::AnyInvocable<void(const Message&)> on_message_;
  absl::AnyInvocable<void(absl::Status)> on_status_;
  bool reported_ = false, reported_ok_ = false;  // strand only
  std::mutex mu_;
  bool closed_ = false;  // guarded by mu_
  std::atomic<std::thread::id> delivering_{};
  friend class Subscription;
};

Subscription::Subscription(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscription::~Subscription() { impl_->Close(); }

absl::StatusOr<std::unique_ptr<Subscription>> Client::Subscribe(
    SubscribeRequest request, absl::AnyInvocable<void(const Message&)> on_message,
    absl::AnyInvocable<void(absl::Status)> on_status) {
  if (request.channels.empty() && request.patterns.empty()) {
    return absl::InvalidArgumentError("redis: Subscribe needs at least one channel or pattern");
  }
  auto impl = std::make_shared<Subscription::Impl>(pool_->shared(), std::move(request),
                                                   std::move(on_message), std::move(on_status));
  asio::post(pool_->shared()->strand, [impl] { impl->Start(); });
  return std::unique_ptr<Subscription>(new Subscription(std::move(impl)));
}

}  // namespace remora::redis
