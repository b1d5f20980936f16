// One ZeroMQ DEALER connection to `nightgrade serve`, used by one thread at a time.
//
// Every call has a deadline. While waiting for a reply the client PINGs the daemon on the same
// socket: PONGs mean "alive, busy", silence for `heartbeat_s` means "dead". A dead or unreachable
// daemon gets the zguide Lazy Pirate treatment: close the socket with LINGER 0, open a new one,
// resend (bounded retries). docs/protocol.md, Transport.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "curve_keys.h"
#include "protocol.h"

namespace zmq {
class socket_t;
}

namespace nightgrade::ofx {

struct CallOptions {
  double timeout_s = 60.0;    // the longest the whole call may take, retries included
  double heartbeat_s = 10.0;  // silence (no reply, no PONG) after which the daemon counts as dead
  int retries = 1;            // resends on a fresh socket after the daemon went silent
  std::function<bool()> aborted;  // polled while waiting; true abandons the call
};

// A contiguous pixel buffer sent after the header (copied into the message).
struct BufferView {
  const void* data;
  size_t size;
};

struct Reply {
  protocol::Header header;
  std::vector<std::string> buffers;
};

class DaemonClient {
 public:
  DaemonClient(std::string address, CurveKeys keys);
  ~DaemonClient();
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;

  const std::string& address() const { return address_; }
  const CurveKeys& keys() const { return keys_; }

  // Sends `header` (whose "id" must be `id`) and `buffers`, returns the reply with that id
  // (ERROR included). Throws BridgeError: Unreachable, DaemonDied, Timeout, Malformed, Aborted.
  Reply call(const std::string& id, const protocol::Value& header, const std::vector<BufferView>& buffers,
             const CallOptions& options);

  // A fresh request id, unique within this client.
  std::string next_id(const char* prefix);

  // The last PONG seen: tells "busy" from "idle" in timeout messages.
  const protocol::Pong& last_pong() const { return last_pong_; }

 private:
  void open();
  void close();
  bool wait_connected(double seconds);

  std::string address_;
  CurveKeys keys_;
  std::unique_ptr<zmq::socket_t> socket_;
  unsigned long long counter_ = 0;
  protocol::Pong last_pong_;
};

// Forget that `address` recently refused connections (the Reconnect button).
void forget_unreachable(const std::string& address);

// Closes the process-wide ZeroMQ context when no socket is open (unload). Never blocks.
void shutdown_zmq();

}  // namespace nightgrade::ofx
