// Scratch buffers kept across calls, so a training step in steady state allocates nothing.
// Buffers are Storage objects: they show up in memory() like tensors do.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>
#include "tensor.h"

namespace orthornn {

class Workspace {
 public:
  explicit Workspace(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  // A buffer of at least `bytes` for `slot`, reused while large enough. Contents are
  // whatever the last user left.
  void* get(size_t slot, size_t bytes) { return storage(slot, bytes)->data(); }
  // The same buffer as storage, for a tensor over it.
  const std::shared_ptr<Storage>& storage(size_t slot, size_t bytes) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    auto& b = buffers_[slot];
    if (!b || b->bytes() < bytes) {
      b.reset();
      b = std::make_shared<Storage>(backend_, bytes);
      generation_ = nextGeneration();
    }
    return b;
  }
  template <typename T>
  T* get(size_t slot, size_t count) {
    return static_cast<T*>(get(slot, count * sizeof(T)));
  }
  void* get(size_t slot, size_t count, DType dt) { return get(slot, count * dtypeSize(dt)); }

  // Frees every buffer (the next get() allocates again).
  void release() {
    buffers_.clear();
    generation_ = nextGeneration();
  }

  // Changes whenever one of this workspace's buffers is allocated anew or freed, and only ever
  // grows: never the same for two workspaces of the process (see Backend::runCall).
  uint64_t generation() const { return generation_; }

  const std::shared_ptr<Backend>& backend() const { return backend_; }

 private:
  std::shared_ptr<Backend> backend_;
  std::vector<std::shared_ptr<Storage>> buffers_;
  uint64_t generation_ = nextGeneration();

  static uint64_t nextGeneration() {
    static std::atomic<uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
  }
};

}  // namespace orthornn
