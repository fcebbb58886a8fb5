// Device storage with shared ownership: a JS handle and every queued op that touches the
// tensor each hold a reference, so disposing a handle while work is in flight is safe.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "backend.h"
#include "dtype.h"

namespace orthornn {

struct MemoryStats {
  std::string device;
  int64_t tensors = 0;
  int64_t bytes = 0;
};

void recordAllocation(const std::string& device, int64_t bytes);
void recordRelease(const std::string& device, int64_t bytes);
std::vector<MemoryStats> memoryStats();

class Storage {
 public:
  Storage(std::shared_ptr<Backend> backend, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Backend& backend() const { return *backend_; }

 private:
  std::shared_ptr<Backend> backend_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::string device_;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtypeSize(dtype); }
  void* data() const { return storage ? storage->data() : nullptr; }
};

std::string shapeString(const std::vector<int64_t>& shape);

}  // namespace orthornn
