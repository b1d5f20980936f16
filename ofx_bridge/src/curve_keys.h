// CurveZMQ keys for a daemon that is not on this machine (docs/protocol.md, Transport): the
// daemon's public key and this client's key pair, read from the certificate files
// `nightgrade keygen` writes (NAME.key holds `public-key = "<Z85>"`, NAME.key_secret also
// `secret-key = "<Z85>"`).
#pragma once

#include <string>

namespace nightgrade::ofx {

struct CurveKeys {
  std::string server_public;  // Z85, 40 characters; all three empty: no Curve
  std::string client_public;
  std::string client_secret;
  bool enabled() const { return !server_public.empty(); }
  bool operator==(const CurveKeys& o) const {
    return server_public == o.server_public && client_public == o.client_public && client_secret == o.client_secret;
  }
};

// Reads the keys named by the two parameters; both empty gives no Curve. Throws
// BridgeError(BadSetting) saying which file is missing, unreadable or not a key file.
CurveKeys load_curve_keys(const std::string& server_key_path, const std::string& client_key_path);

}  // namespace nightgrade::ofx
