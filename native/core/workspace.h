// Scratch buffers kept across calls, so a training step in steady state allocates nothing.
// Buffers are Storage objects: they show up in memory() like tensors do.
#pragma once
#include <memory>
#include <vector>
#include "tensor.h"

namespace orthornn {

class Workspace {
 public:
  explicit Workspace(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  // A buffer of at least `bytes` for `slot`, reused while large enough. Contents are
  // whatever the last user left.
  void* get(size_t slot, size_t bytes) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    auto& b = buffers_[slot];
    if (!b || b->bytes() < bytes) {
      b.reset();
      b = std::make_shared<Storage>(backend_, bytes);
    }
    return b->data();
  }
  template <typename T>
  T* get(size_t slot, size_t count) {
    return static_cast<T*>(get(slot, count * sizeof(T)));
  }
  void* get(size_t slot, size_t count, DType dt) { return get(slot, count * dtypeSize(dt)); }

  // Frees every buffer (the next get() allocates again).
  void release() { buffers_.clear(); }

  const std::shared_ptr<Backend>& backend() const { return backend_; }

 private:
  std::shared_ptr<Backend> backend_;
  std::vector<std::shared_ptr<Storage>> buffers_;
};

}  // namespace orthornn
