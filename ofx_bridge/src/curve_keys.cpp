#include "curve_keys.h"

#include <fstream>
#include <sstream>

#include "errors.h"

namespace nightgrade::ofx {

namespace {

// The quoted Z85 value of `name = "..."` in a zmq certificate file, or empty.
std::string certificate_value(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find(name);
    if (at == std::string::npos || line.find_first_not_of(" \t") != at) continue;
    const size_t open = line.find('"', at), close = line.rfind('"');
    if (open == std::string::npos || close <= open) continue;
    std::string value = line.substr(open + 1, close - open - 1);
    if (value.size() == 40) return value;
  }
  return {};
}

std::string read_key_file(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) {
    throw BridgeError(Failure::BadSetting, std::string("NightGrade: cannot read the ") + what + " '" + path +
                                               "': check the path, or create keys with `nightgrade keygen`");
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

[[noreturn]] void not_a_key(const std::string& path, const char* needs) {
  throw BridgeError(Failure::BadSetting, "NightGrade: '" + path + "' holds no " + needs +
                                             ": use the files `nightgrade keygen` writes (NAME.key, NAME.key_secret)");
}

}  // namespace

CurveKeys load_curve_keys(const std::string& server_key_path, const std::string& client_key_path) {
  CurveKeys keys;
  if (server_key_path.empty() && client_key_path.empty()) return keys;
  if (server_key_path.empty() || client_key_path.empty()) {
    throw BridgeError(Failure::BadSetting,
                      "NightGrade: Curve needs both the daemon's public key (.key) and this machine's key pair "
                      "(.key_secret): fill in both key parameters, or empty both for a daemon on this machine");
  }
  keys.server_public = certificate_value(read_key_file(server_key_path, "daemon's public key"), "public-key");
  if (keys.server_public.empty()) not_a_key(server_key_path, "public-key");
  const std::string pair = read_key_file(client_key_path, "client key pair");
  keys.client_public = certificate_value(pair, "public-key");
  keys.client_secret = certificate_value(pair, "secret-key");
  if (keys.client_public.empty() || keys.client_secret.empty()) not_a_key(client_key_path, "public-key and secret-key");
  return keys;
}

}  // namespace nightgrade::ofx
