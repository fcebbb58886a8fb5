#include "parallel.h"

#include <algorithm>
#include <cstdlib>

#include "../core/denormals.h"
#include "../core/threads.h"

namespace orthornn {

// Never destroyed: joining its threads from a static destructor would hang an exit that
// happens while a context's worker is still using the pool.
ParallelPool& ParallelPool::instance() {
  static ParallelPool* pool = new ParallelPool();
  return *pool;
}

unsigned cpuThreads() {
  static const unsigned threads = [] {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const char* env = std::getenv("ORTHORNN_NUM_THREADS");
    if (!env || !*env) return cores;
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    return (end && *end == '\0' && v >= 1 && v <= 4096) ? unsigned(v) : cores;
  }();
  return threads;
}

namespace {
thread_local int tlsThreadCap = 0;  // 0: no cap
}

int threadCap() { return tlsThreadCap > 0 ? tlsThreadCap : int(cpuThreads()); }
void setThreadCap(int threads) { tlsThreadCap = threads > 0 ? threads : 0; }

ParallelPool::ParallelPool() {
  const unsigned cores = cpuThreads();
  for (unsigned i = 1; i < cores; ++i) workers_.emplace_back([this, i] { work(int(i)); });
}

int ParallelPool::run(int64_t count, int64_t grain, const std::function<void(int, int64_t, int64_t)>& body) {
  if (count <= 0) return 0;
  int chunks = int(std::min<int64_t>(std::min(maxChunks(), threadCap()), std::max<int64_t>(1, count / std::max<int64_t>(1, grain))));
  std::unique_lock<std::mutex> exclusive(busy_, std::defer_lock);
  if (chunks > 1 && !exclusive.try_lock()) chunks = 1;
  if (chunks == 1) {
    body(0, 0, count);
    return 1;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunks_ = chunks;
    pending_ = chunks - 1;
    ++generation_;
  }
  start_.notify_all();
  body(0, 0, count / chunks);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
  body_ = nullptr;
  return chunks;
}

void ParallelPool::work(int index) {
  nameThisThread("orthornn-pool");
  flushDenormalsOnThisThread();
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int64_t, int64_t)>* body;
    int64_t begin, end;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= chunks_) continue;  // not needed for this loop
      body = body_;
      begin = count_ * index / chunks_;
      end = count_ * (index + 1) / chunks_;
    }
    (*body)(index, begin, end);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

}  // namespace orthornn
