#include "tensor.h"

#include <map>
#include <mutex>
#include <sstream>

namespace orthornn {

namespace {
std::mutex& statsMutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, MemoryStats>& statsTable() {
  static std::map<std::string, MemoryStats> table;
  return table;
}
}  // namespace

void recordAllocation(const std::string& device, int64_t bytes) {
  std::lock_guard<std::mutex> lock(statsMutex());
  MemoryStats& s = statsTable()[device];
  s.device = device;
  s.tensors += 1;
  s.bytes += bytes;
}

void recordRelease(const std::string& device, int64_t bytes) {
  std::lock_guard<std::mutex> lock(statsMutex());
  MemoryStats& s = statsTable()[device];
  s.tensors -= 1;
  s.bytes -= bytes;
}

std::vector<MemoryStats> memoryStats() {
  std::lock_guard<std::mutex> lock(statsMutex());
  std::vector<MemoryStats> out;
  for (const auto& kv : statsTable()) out.push_back(kv.second);
  return out;
}

Storage::Storage(std::shared_ptr<Backend> backend, size_t bytes)
    : backend_(std::move(backend)), bytes_(bytes), device_(backend_->device()) {
  // A zero-element tensor still owns a distinct (1-byte) allocation so pointers stay valid.
  data_ = backend_->allocate(bytes_ == 0 ? 1 : bytes_);
  recordAllocation(device_, static_cast<int64_t>(bytes_));
}

Storage::~Storage() {
  backend_->deallocate(data_, bytes_ == 0 ? 1 : bytes_);
  recordRelease(device_, static_cast<int64_t>(bytes_));
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

}  // namespace orthornn
