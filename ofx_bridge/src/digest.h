// Content digests as the protocol defines them: "b2:" + hex(BLAKE2b-128) over the pixel rows
// without padding, top row first (docs/protocol.md, Digests).
#pragma once

#include <sodium.h>

#include <cstddef>
#include <string>

namespace nightgrade::ofx {

// Streams rows into one digest, so a frame can be hashed while it is converted.
class Digest {
 public:
  Digest();
  void update(const void* data, size_t size);
  // "b2:" + 32 hex digits. Call once.
  std::string finish();

 private:
  crypto_generichash_state state_;
};

// Digest of one contiguous buffer.
std::string digest_of(const void* data, size_t size);

}  // namespace nightgrade::ofx
