// Exceptions used inside the bridge. None of them ever leaves an OpenFX entry point: plugin.cpp
// catches everything and turns it into a status plus a persistent message.
#pragma once

#include <stdexcept>
#include <string>

namespace nightgrade::ofx {

// What went wrong, so the caller can choose the status, the message and whether to retry.
enum class Failure {
  Unreachable,   // no connection could be made to the daemon address
  DaemonDied,    // the daemon stopped answering (no reply, not even to PING) during a request
  Timeout,       // the daemon is alive but did not finish within the timeout
  Malformed,     // the daemon's reply broke the protocol
  DaemonError,   // the daemon answered ERROR
  HostImage,     // the host handed no image, or one the bridge cannot read
  BadSetting,    // a parameter value the bridge cannot use (e.g. an invalid address)
  Aborted,       // the host asked to abandon the render
};

// An error with a one-line, user-facing message that says what is wrong and what to do.
class BridgeError : public std::runtime_error {
 public:
  BridgeError(Failure failure, const std::string& message, std::string code = {})
      : std::runtime_error(message), failure_(failure), code_(std::move(code)) {}
  Failure failure() const { return failure_; }
  // The daemon's ERROR code for Failure::DaemonError, else empty.
  const std::string& code() const { return code_; }

 private:
  Failure failure_;
  std::string code_;
};

}  // namespace nightgrade::ofx
