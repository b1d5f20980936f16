// The Daemon address parameter's rules, checked before any socket exists.
#pragma once

#include <string>

namespace nightgrade::ofx {

// Why `address` cannot name a daemon, or "" when it can. ZeroMQ itself accepts inproc:// (where
// no daemon can ever be, so a render would only fail after the heartbeat) and ports it cannot
// use (99999 fails later as "unreachable"); the bridge says what is wrong at once instead.
std::string address_problem(const std::string& address);

}  // namespace nightgrade::ofx
