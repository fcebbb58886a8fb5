// The keys under which a backend may replay a whole call (Backend::runCall): everything the
// call's launches take, a value at a time.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>
#include "tensor.h"

namespace orthornn {

// A tensor's address, element count, dtype and shape; zeros for an absent one.
inline void appendKey(std::vector<uint64_t>& key, const Tensor& t) {
  const bool present = bool(t.storage);
  key.push_back(reinterpret_cast<uintptr_t>(t.data()));
  key.push_back(present ? uint64_t(t.numel()) : 0);
  key.push_back(present ? uint64_t(t.dtype) : 0);
  key.push_back(present ? uint64_t(t.shape.size()) : 0);
  if (present)
    for (int64_t d : t.shape) key.push_back(uint64_t(d));
}

// A number by its bits.
inline void appendKey(std::vector<uint64_t>& key, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  key.push_back(bits);
}

}  // namespace orthornn
