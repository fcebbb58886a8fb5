// A small thread pool for the CPU backend's element-wise loops. Its workers sleep on a
// condition variable between loops instead of spinning (as OpenMP's do by default), so
// they never take cores from the BLAS threads that run the GEMMs in between.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace orthornn {

// Threads for the CPU backend (its loops, the recurrence team and OpenBLAS): the
// ORTHORNN_NUM_THREADS environment variable when set to a positive integer, else the cores.
unsigned cpuThreads();

// The most threads the calling thread's loops and recurrences may use (a context's `threads`
// option, set on its worker thread); cpuThreads() unless set. OpenBLAS keeps its own count.
int threadCap();
void setThreadCap(int threads);

class ParallelPool {
 public:
  // Shared by every CPU context of the process.
  static ParallelPool& instance();

  // Splits [0, count) into at most workers + 1 contiguous chunks and runs body(chunk, begin,
  // end) for each, the caller taking chunk 0; returns the number of chunks. Runs serially
  // (one chunk) when count < grain or when another context is using the pool.
  int run(int64_t count, int64_t grain, const std::function<void(int, int64_t, int64_t)>& body);

  // The most chunks run() will use.
  int maxChunks() const { return int(workers_.size()) + 1; }

 private:
  ParallelPool();
  void work(int index);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // one loop at a time
  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int, int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0;
  int chunks_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
};

// Loops of at least this many element operations are split across the pool: waking a
// sleeping worker costs tens of microseconds, worth it only for large loops.
constexpr int64_t kParallelGrain = 1 << 20;

// body(begin, end) over [0, count); `cost` weighs one index in element operations.
template <typename F>
void parallelFor(int64_t count, int64_t cost, F&& body) {
  const int64_t grain = cost > 0 ? (kParallelGrain + cost - 1) / cost : kParallelGrain;
  std::function<void(int, int64_t, int64_t)> f = [&](int, int64_t b, int64_t e) { body(b, e); };
  ParallelPool::instance().run(count, grain, f);
}

// Σ of body(begin, end) over the chunks, added in chunk order (deterministic for a given
// machine).
template <typename F>
double parallelSum(int64_t count, int64_t cost, F&& body) {
  ParallelPool& pool = ParallelPool::instance();
  std::vector<double> partial(size_t(pool.maxChunks()), 0.0);
  const int64_t grain = cost > 0 ? (kParallelGrain + cost - 1) / cost : kParallelGrain;
  std::function<void(int, int64_t, int64_t)> f = [&](int chunk, int64_t b, int64_t e) { partial[size_t(chunk)] = body(b, e); };
  int used = pool.run(count, grain, f);
  double total = 0;
  for (int i = 0; i < used; ++i) total += partial[size_t(i)];
  return total;
}

}  // namespace orthornn
