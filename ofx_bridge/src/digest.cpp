#include "digest.h"

#include <stdexcept>

namespace nightgrade::ofx {

constexpr size_t kDigestBytes = 16;

Digest::Digest() {
  // sodium_init is idempotent and thread-safe; without it BLAKE2b still works but may pick a
  // slower implementation.
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  crypto_generichash_init(&state_, nullptr, 0, kDigestBytes);
}

void Digest::update(const void* data, size_t size) {
  crypto_generichash_update(&state_, static_cast<const unsigned char*>(data), size);
}

std::string Digest::finish() {
  unsigned char out[kDigestBytes];
  crypto_generichash_final(&state_, out, kDigestBytes);
  static const char* hex = "0123456789abcdef";
  std::string text = "b2:";
  for (unsigned char byte : out) {
    text.push_back(hex[byte >> 4]);
    text.push_back(hex[byte & 15]);
  }
  return text;
}

std::string digest_of(const void* data, size_t size) {
  Digest d;
  d.update(data, size);
  return d.finish();
}

}  // namespace nightgrade::ofx
