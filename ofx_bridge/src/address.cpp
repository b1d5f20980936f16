#include "address.h"

#include <cctype>

namespace nightgrade::ofx {

namespace {

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

std::string address_problem(const std::string& address) {
  if (starts_with(address, "ipc://")) return address.size() > 6 ? "" : "ipc:// needs a socket path";
  if (!starts_with(address, "tcp://")) {
    const size_t scheme = address.find("://");
    if (scheme == std::string::npos) return "it has no tcp:// or ipc:// in front";
    return address.substr(0, scheme + 3) + " cannot reach a daemon, which runs in another process";
  }
  const size_t colon = address.rfind(':');
  if (colon < 6) return "it has no :PORT";
  const std::string host = address.substr(6, colon - 6), port = address.substr(colon + 1);
  if (host.empty()) return "it has no host";
  long value = 0;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || value > 65535) {
      value = -1;
      break;
    }
    value = value * 10 + (c - '0');
  }
  if (port.empty() || value < 1 || value > 65535) return "port '" + port + "' is not a port number from 1 to 65535";
  return "";
}

}  // namespace nightgrade::ofx
