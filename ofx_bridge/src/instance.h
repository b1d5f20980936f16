// Per-instance state: clip and parameter handles, a small pool of daemon connections (one per
// concurrent render), the daemon's last WELCOME, and the status the host shows.
//
// Thread safety (declared to the host as kOfxImageEffectRenderFullySafe): renders of one
// instance may run concurrently; each leases its own DaemonClient from the pool, so no socket is
// ever shared between threads. `pool_mutex` guards only the pool, `state_mutex` only the
// WELCOME/status fields, and neither is held while waiting for the daemon.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon_client.h"
#include "params.h"
#include "protocol.h"

namespace nightgrade::ofx {

struct Instance {
  OfxImageEffectHandle handle = nullptr;
  OfxImageClipHandle source = nullptr;
  OfxImageClipHandle output = nullptr;
  ParamHandles params;
  std::string clip_name;  // the protocol's `clip`: unique per instance, for the daemon's log

  std::mutex pool_mutex;
  std::vector<std::unique_ptr<DaemonClient>> idle;
  unsigned generation = 0;  // bumped by Reconnect: leased clients of older generations are closed

  std::mutex state_mutex;
  std::optional<protocol::Welcome> welcome;
  std::string welcome_address;
  std::string status = "Not connected yet: the first render connects to the daemon";
  std::string shown_status;   // what the Status parameter holds
  std::string posted_error;   // the persistent message now shown, empty when none
  unsigned welcome_serial = 0;  // bumped whenever `welcome` changes
  unsigned shown_serial = 0;    // the welcome_serial whose models the Model choice lists
};

// The instance behind an effect handle (kOfxPropInstanceData), or nullptr.
Instance* instance_of(OfxImageEffectHandle handle);

// A connection leased for one render; given back (or closed) when the lease ends.
class ClientLease {
 public:
  ClientLease(Instance& instance, const std::string& address, const CurveKeys& keys);
  ~ClientLease();
  ClientLease(const ClientLease&) = delete;
  ClientLease& operator=(const ClientLease&) = delete;
  DaemonClient& operator*() { return *client_; }
  DaemonClient* operator->() { return client_.get(); }

 private:
  Instance& instance_;
  std::unique_ptr<DaemonClient> client_;
  unsigned generation_;
};

// Closes idle connections and makes leased ones close when given back.
void reset_clients(Instance& instance);

// The daemon's WELCOME for `client`'s address: cached, or asked for with HELLO.
protocol::Welcome ensure_welcome(Instance& instance, DaemonClient& client, const CallOptions& options);

// Records a failure: the status line, and a persistent error message unless the same one shows.
void report_failure(Instance& instance, const std::string& message);
// Records success: the status line, and clears a persistent error message if one shows.
void report_success(Instance& instance, const std::string& status);

// Copies the recorded status and the daemon's model list into the parameters. Only valid in
// actions where a plug-in may set parameter values (instance changed, begin edit, sync).
void publish_state(Instance& instance);

// Reconnect button: fresh connection, HELLO, status and model list. Blocks up to the timeout.
void reconnect(Instance& instance, OfxTime time);

// Model choice changed by the user: remember the chosen name in the secret string parameter.
void remember_model_choice(Instance& instance, OfxTime time);

}  // namespace nightgrade::ofx
