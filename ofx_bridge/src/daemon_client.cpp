#include "daemon_client.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <mutex>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "address.h"
#include "errors.h"

namespace nightgrade::ofx {

using Clock = std::chrono::steady_clock;

namespace {

// How long after a refused connection further renders fail at once instead of waiting again:
// a host opening a page renders hundreds of thumbnails, and each must not wait for a dead daemon.
constexpr double kRefusedMemoryS = 2.0;
// The longest a connection attempt may take before the address counts as unreachable.
constexpr double kConnectWaitS = 2.0;

std::mutex g_mutex;                    // guards everything below
zmq::context_t* g_context = nullptr;   // created on the first socket, never at load
int g_open_sockets = 0;
std::map<std::string, Clock::time_point> g_refused;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Clock::time_point after(Clock::time_point t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", s);
  return text;
}

BridgeError unreachable(const std::string& address, bool curve) {
  if (curve) {
    return BridgeError(Failure::Unreachable,
                       "NightGrade: cannot reach the daemon at " + address +
                           " with Curve: start `nightgrade serve` there, check the address, and check that the daemon's "
                           "authorised keys folder holds this machine's NAME.key (restart the daemon after adding it), "
                           "then press Reconnect");
  }
  return BridgeError(Failure::Unreachable,
                     "NightGrade: cannot reach the daemon at " + address +
                         ": start it with `nightgrade serve` (it listens on tcp://127.0.0.1:5557 unless given "
                         "--bind) or correct the Daemon address parameter, then press Reconnect");
}

BridgeError died(const std::string& address, double heartbeat_s) {
  return BridgeError(Failure::DaemonDied,
                     "NightGrade: the daemon at " + address + " stopped answering (no reply, not even to PING, for " +
                         format_seconds(heartbeat_s) +
                         " s): it may have crashed or been stopped; check its log, restart `nightgrade serve` "
                         "and press Reconnect");
}

// One poll; a signal interrupting it (hosts use signals) only ends the wait early.
void poll_once(zmq::pollitem_t& item, long milliseconds) {
  item.revents = 0;
  try {
    zmq::poll(&item, 1, std::chrono::milliseconds(milliseconds));
  } catch (const zmq::error_t& error) {
    if (error.num() != EINTR) throw;
  }
}

}  // namespace

void forget_unreachable(const std::string& address) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_refused.erase(address);
}

void shutdown_zmq() {
  std::lock_guard<std::mutex> lock(g_mutex);
  // Terminating a context with open sockets blocks until they close: rather leak it than hang
  // the host's unload when a host forgot to destroy an instance.
  if (g_context != nullptr && g_open_sockets == 0) {
    delete g_context;
    g_context = nullptr;
  }
}

DaemonClient::DaemonClient(std::string address, CurveKeys keys) : address_(std::move(address)), keys_(std::move(keys)) {}

DaemonClient::~DaemonClient() { close(); }

std::string DaemonClient::next_id(const char* prefix) { return prefix + std::to_string(++counter_); }

static BridgeError invalid_address(const std::string& address, const std::string& problem) {
  return BridgeError(Failure::BadSetting, "NightGrade: '" + address + "' is not a valid daemon address (" + problem +
                                              "): use tcp://HOST:PORT (default tcp://127.0.0.1:5557) or ipc://PATH "
                                              "in the Daemon address parameter");
}

void DaemonClient::open() {
  const std::string problem = address_problem(address_);
  if (!problem.empty()) throw invalid_address(address_, problem);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_context == nullptr) g_context = new zmq::context_t(1);
  auto socket = std::make_unique<zmq::socket_t>(*g_context, zmq::socket_type::dealer);
  socket->set(zmq::sockopt::linger, 0);
  // Queue messages only on completed connections, so "not connected" is visible as POLLOUT
  // never firing instead of a send that waits forever.
  socket->set(zmq::sockopt::immediate, 1);
  socket->set(zmq::sockopt::reconnect_ivl, 100);
  socket->set(zmq::sockopt::reconnect_ivl_max, 1000);
  if (keys_.enabled()) {
    socket->set(zmq::sockopt::curve_serverkey, keys_.server_public);
    socket->set(zmq::sockopt::curve_publickey, keys_.client_public);
    socket->set(zmq::sockopt::curve_secretkey, keys_.client_secret);
  }
  try {
    socket->connect(address_);
  } catch (const zmq::error_t& error) {
    throw invalid_address(address_, error.what());
  }
  socket_ = std::move(socket);
  ++g_open_sockets;
}

void DaemonClient::close() {
  if (!socket_) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  socket_->close();  // LINGER 0: pending messages are dropped, nothing waits
  socket_.reset();
  --g_open_sockets;
}

bool DaemonClient::wait_connected(double seconds) {
  zmq::pollitem_t item{static_cast<void*>(*socket_), 0, ZMQ_POLLOUT, 0};
  const auto end = after(Clock::now(), seconds);
  while (true) {
    const double left = seconds_between(Clock::now(), end);
    poll_once(item, static_cast<long>(std::clamp(left * 1000.0, 0.0, 50.0)));
    if (item.revents & ZMQ_POLLOUT) return true;
    if (left <= 0) return false;
  }
}

static bool send_message(zmq::socket_t& socket, const std::string& head, const std::vector<BufferView>& buffers) {
  const auto more = buffers.empty() ? zmq::send_flags::dontwait : zmq::send_flags::dontwait | zmq::send_flags::sndmore;
  if (!socket.send(zmq::buffer(head), more)) return false;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const auto flags = i + 1 < buffers.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    // Once the first part is queued the rest of a multipart message is accepted as a whole.
    socket.send(zmq::const_buffer(buffers[i].data, buffers[i].size), flags);
  }
  return true;
}

Reply DaemonClient::call(const std::string& id, const protocol::Value& header, const std::vector<BufferView>& buffers,
                         const CallOptions& options) {
  const std::string head = protocol::pack(header);
  const auto deadline = after(Clock::now(), options.timeout_s);
  const double ping_every = std::clamp(options.heartbeat_s / 4.0, 0.05, 1.0);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto refused = g_refused.find(address_);
    if (refused != g_refused.end() && seconds_between(refused->second, Clock::now()) < kRefusedMemoryS) {
      throw unreachable(address_, keys_.enabled());
    }
  }
  bool connected_once = false;
  for (int attempt = 0;; ++attempt) {
    if (!socket_) open();
    const double left = seconds_between(Clock::now(), deadline);
    const double connect_wait = std::min({left, kConnectWaitS, options.heartbeat_s});
    if (connect_wait <= 0 || !wait_connected(connect_wait) || !send_message(*socket_, head, buffers)) {
      close();
      if (connected_once) throw died(address_, options.heartbeat_s);
      std::lock_guard<std::mutex> lock(g_mutex);
      g_refused[address_] = Clock::now();
      throw unreachable(address_, keys_.enabled());
    }
    connected_once = true;
    auto last_heard = Clock::now();
    auto next_ping = after(last_heard, ping_every);
    bool ponged = false;
    zmq::pollitem_t item{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0};
    while (true) {
      auto now = Clock::now();
      if (options.aborted && options.aborted()) {
        socket_->send(zmq::buffer(protocol::pack(protocol::cancel(next_id("c"), id))), zmq::send_flags::dontwait);
        close();
        throw BridgeError(Failure::Aborted, "NightGrade: the host abandoned the render");
      }
      if (now >= deadline && !ponged) {
        close();
        throw BridgeError(Failure::Timeout, "NightGrade: the daemon at " + address_ + " did not answer within " +
                                                format_seconds(options.timeout_s) +
                                                " s, not even to PING: check that `nightgrade serve` runs there and "
                                                "is not stopped, then press Reconnect");
      }
      if (now >= deadline) {
        close();
        throw BridgeError(Failure::Timeout,
                          "NightGrade: the daemon at " + address_ + " is alive but did not answer within " +
                              format_seconds(options.timeout_s) + " s (" + (last_pong_.busy ? "busy" : "idle") +
                              ", " + std::to_string(last_pong_.queue) +
                              " requests queued): raise the Timeout parameter, render at a proxy scale, or give "
                              "the daemon a GPU");
      }
      if (now >= after(last_heard, options.heartbeat_s)) break;
      if (now >= next_ping) {
        socket_->send(zmq::buffer(protocol::pack(protocol::ping(next_id("p")))), zmq::send_flags::dontwait);
        next_ping = after(now, ping_every);
      }
      const Clock::time_point until =
          std::min({deadline, after(last_heard, options.heartbeat_s), next_ping, after(now, 0.1)});
      const long wait_ms = std::max(0L, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()));
      poll_once(item, wait_ms);
      while (item.revents & ZMQ_POLLIN) {
        std::vector<zmq::message_t> parts;
        if (!zmq::recv_multipart(*socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
        last_heard = Clock::now();
        if (parts.empty()) continue;
        protocol::Header reply = [&] {
          try {
            return protocol::Header::decode(parts[0].data(), parts[0].size());
          } catch (...) {
            close();
            throw;
          }
        }();
        // An ERROR whose id the daemon could not read can only answer our one request.
        if (reply.id() == id || (reply.type() == "ERROR" && reply.id().empty())) {
          Reply out{std::move(reply), {}};
          for (size_t i = 1; i < parts.size(); ++i) out.buffers.emplace_back(parts[i].data<char>(), parts[i].size());
          return out;
        }
        if (reply.type() == "PONG") {
          last_pong_ = protocol::parse_pong(reply);
          ponged = true;
        }
      }
    }
    close();  // Lazy Pirate: a silent socket may be stuck; only a fresh one is trustworthy
    if (attempt >= options.retries) throw died(address_, options.heartbeat_s);
  }
}

}  // namespace nightgrade::ofx
