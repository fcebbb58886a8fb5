#include "recurrence.h"
#include "parallel.h"
#include "../core/denormals.h"
#include "../core/threads.h"
#include "vector_state.h"

#ifdef ORTHORNN_WITH_LIBXSMM
#include <libxsmm.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <unistd.h>
#endif

namespace orthornn {

#ifndef ORTHORNN_WITH_LIBXSMM

bool fastElmanForwardRecurrence(DType, Activation, int64_t, int64_t, int64_t, const void*, const void*,
                                const Projection&, const Logits&, void*, void*) {
  return false;
}
bool fastElmanBackwardRecurrence(DType, Activation, int64_t, int64_t, int64_t, const void*, const void*,
                                 const Projection&, const Projection&, void*, void*, const BackwardSums&, int64_t,
                                 double) {
  return false;
}
bool fastLstmForwardRecurrence(DType, int64_t, int64_t, int64_t, const void*, const void*, const void*, void*, void*,
                               void*) {
  return false;
}
bool fastLstmBackwardRecurrence(DType, int64_t, int64_t, int64_t, const void*, const void*, void*, void*, void*,
                                const Backend::LstmSums&) {
  return false;
}
bool fastRecurrenceCompiled() { return false; }

#else

namespace {

// libxsmm frees its JIT code from an exit handler it registers on first use. Initialising it
// when the addon loads registers that handler before the one that stops the contexts'
// workers (native/core/context.cpp), so at exit the workers stop first and never jump into
// freed code (exit handlers run last-registered first).
const bool libxsmmReady = (libxsmm_init(), true);

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Helpers sleep until a recurrence starts, then spin on a generation counter until it ends.
class SpinTeam {
 public:
  // Never destroyed, like the element-wise pool: an exit during a recurrence must not join
  // a spinning helper.
  static SpinTeam& instance() {
    static SpinTeam* team = new SpinTeam();
    return *team;
  }
  int size() const { return int(helpers_.size()) + 1; }

  // Holds the team for one recurrence; `acquired` is false when another context has it.
  class Session {
   public:
    explicit Session(SpinTeam& t) : team_(t), lock_(t.exclusive_, std::try_to_lock) {
      if (lock_.owns_lock()) team_.activate();
    }
    ~Session() {
      if (lock_.owns_lock()) team_.deactivate();
    }
    bool acquired() const { return lock_.owns_lock(); }

   private:
    SpinTeam& team_;
    std::unique_lock<std::mutex> lock_;
  };

  // Runs job(part) for part = 0..parts−1 (parts ≤ size()) and returns when all are done.
  // Helper i takes part i; the caller takes part 0 and then every part whose helper has not
  // claimed it yet. On a busy machine the OS may deschedule a helper for milliseconds: the
  // step then costs the caller that helper's share instead of a wait for it.
  void run(int parts, const std::function<void(int)>& job) {
    job_ = &job;
    completed_.store(0, std::memory_order_relaxed);
    const uint64_t g = (generation_.load(std::memory_order_relaxed) >> kPartBits) + 1;
    generation_.store(g << kPartBits | uint64_t(parts), std::memory_order_release);
    job(0);
    int mine = 1;
    for (int p = 1; p < parts; ++p)
      if (claim(p, g)) {
        job(p);
        ++mine;
      }
    completed_.fetch_add(mine, std::memory_order_acq_rel);
    while (completed_.load(std::memory_order_acquire) != parts) relax();
  }

  // Within a session: let the helpers sleep while the caller carries on alone, and wake them.
  void pause() { deactivate(); }
  void resume() { activate(); }

 private:
  // generation_ holds the generation above kPartBits and that run's part count below.
  static constexpr int kPartBits = 16;

  SpinTeam() : claimed_(new std::atomic<uint64_t>[cpuThreads()]) {
    const unsigned cores = cpuThreads();
    for (unsigned i = 0; i < cores; ++i) claimed_[i].store(0, std::memory_order_relaxed);
    for (unsigned i = 1; i < cores; ++i) helpers_.emplace_back([this, i] { loop(int(i)); });
  }

  // Part p of generation g, for whoever gets there first. Every part of a generation is
  // claimed before run() returns, so a helper that wakes up late fails here and never reads
  // a job_ that has moved on.
  bool claim(int p, uint64_t g) {
    uint64_t c = claimed_[p].load(std::memory_order_relaxed);
    return c < g && claimed_[p].compare_exchange_strong(c, g, std::memory_order_acq_rel, std::memory_order_relaxed);
  }

  void activate() {
    std::lock_guard<std::mutex> lock(mutex_);
    startGeneration_ = generation_.load(std::memory_order_relaxed) >> kPartBits;
    active_.store(true, std::memory_order_release);
    wake_.notify_all();
  }
  void deactivate() { active_.store(false, std::memory_order_release); }

  void loop(int part) {
    nameThisThread("orthornn-team");
    flushDenormalsOnThisThread();
    for (;;) {
      uint64_t seen;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return active_.load(std::memory_order_acquire); });
        seen = startGeneration_;
      }
      while (active_.load(std::memory_order_acquire)) {
        const uint64_t word = generation_.load(std::memory_order_acquire);
        const uint64_t g = word >> kPartBits;
        if (g == seen) {
          relax();
          continue;
        }
        seen = g;
        const int parts = int(word & ((uint64_t(1) << kPartBits) - 1));
        if (part >= parts || !claim(part, g)) continue;
        (*job_)(part);
        completed_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }

  std::vector<std::thread> helpers_;
  std::mutex exclusive_;  // one recurrence at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> active_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> completed_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> claimed_;  // per part: the last generation that claimed it
  uint64_t startGeneration_ = 0;
  const std::function<void(int)>* job_ = nullptr;  // published by the release on generation_
};

// The kernels stream each thread's columns of the recurrent matrix from its core's L2 cache
// every step; once that share no longer fits, BLAS (which packs it) wins. Measured on a
// 2-core machine with 2 MiB of L2 per core: 16 × 1024 × 1024 float32 runs at 54 GFLOP/s on
// one thread (4 MiB of W) and beats BLAS split over two (2 MiB each).
int64_t l2Bytes() {
  static const int64_t bytes = [] {
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? int64_t(v) : int64_t(1) << 20;
  }();
  return bytes;
}

bool fitsCache(int64_t n, size_t elementSize, int parts) { return n * n * int64_t(elementSize) / parts <= l2Bytes(); }

// Column ranges [begin, end) of the n outputs, one per part, multiples of 16 where possible.
struct Parts {
  std::vector<int64_t> bounds;
  Parts(int64_t n, int parts) {
    for (int p = 0; p <= parts; ++p) {
      int64_t b = n * p / parts;
      if (p != 0 && p != parts) b = std::min(n, (b + 8) / 16 * 16);
      bounds.push_back(b);
    }
  }
  int64_t begin(int p) const { return bounds[size_t(p)]; }
  int64_t end(int p) const { return bounds[size_t(p) + 1]; }
};

// Each part's columns cut into chunks of at most `size`, and the distinct chunk widths (a
// part's last chunk may be narrower): chunk.kernel indexes `widths`, and the kernels a user
// keeps one per width. `newWidth(m)` is called once per distinct width, in order, to make its
// kernels; it returns false when one cannot be made, and then so does build().
struct Chunking {
  struct Chunk {
    int64_t c0, c1;
    size_t kernel;
  };
  std::vector<std::vector<Chunk>> chunks;  // per part
  std::vector<int64_t> widths;
  template <typename F>
  bool build(const Parts& parts, int count, int64_t size, F&& newWidth) {
    chunks.assign(size_t(count), {});
    for (int p = 0; p < count; ++p)
      for (int64_t c0 = parts.begin(p); c0 < parts.end(p); c0 += size) {
        const int64_t c1 = std::min(parts.end(p), c0 + size), m = c1 - c0;
        size_t k = 0;
        while (k < widths.size() && widths[k] != m) ++k;
        if (k == widths.size()) {
          widths.push_back(m);
          if (!newWidth(m)) return false;
        }
        chunks[size_t(p)].push_back({c0, c1, k});
      }
    return true;
  }
};

// C_cm(M × N) (+)= A_cm(M × K) · B_cm(K × N), column-major with the given leading dimensions.
// In a step, with m a chunk's width (below):
//  - the recurrent product, M = m, N = B, K = n: columns [c0, c0 + m) of a B × n block +=
//    (B × n block) · (n × n matrix)[:, c0 : c0 + m], that matrix's columns packed (lda = m);
//  - a projection, the same with K = d or k, overwriting;
//  - the logits, M = k, N = B, K = m: a B × k block += (the chunk's B × m block of H) ·
//    (W_outᵀ's rows c0 … c0 + m − 1).
template <typename T>
struct Kernel {
  using Fn = void (*)(const T*, const T*, T*);
  Fn fn = nullptr;
  Kernel(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, bool accumulate) {
    const libxsmm_blasint la = libxsmm_blasint(lda), lb = libxsmm_blasint(ldb), lc = libxsmm_blasint(ldc);
    const T alpha = 1, beta = accumulate ? 1 : 0;
    if constexpr (std::is_same_v<T, float>)
      fn = reinterpret_cast<Fn>(libxsmm_smmdispatch(libxsmm_blasint(M), libxsmm_blasint(N), libxsmm_blasint(K), &la,
                                                    &lb, &lc, &alpha, &beta, nullptr, nullptr));
    else
      fn = reinterpret_cast<Fn>(libxsmm_dmmdispatch(libxsmm_blasint(M), libxsmm_blasint(N), libxsmm_blasint(K), &la,
                                                    &lb, &lc, &alpha, &beta, nullptr, nullptr));
  }
};

// Each part's columns of the recurrent matrix, in chunks of at most `chunk` columns, each
// chunk packed into one contiguous block (row k of the chunk at k · width). Unpacked, a
// chunk's rows lie n elements apart, a page apart at n = 1024 float32, and the hardware
// prefetchers, which stop at page boundaries, cannot stream them: the products ran at half
// the rate (measured: 16 × 1024 × 1024 on two cores, 101 → 220 GFLOP/s; 32 × 512 × 512,
// 180 → 210). A step visits a part's chunks forward on even steps and backward on odd ones,
// so the chunks it used last, the likeliest still in L2, are the first the next step needs.
//
// A projection (the inputs' X_t W_inᵀ forward, the outputs' dY_t W_out backward) is folded
// into the same steps: each chunk's columns of it are computed first, into the block the
// recurrent product then adds to, from the projection matrix's columns packed likewise. That
// spares a T·B × n product written to memory beforehand and read back by the steps. The
// output layer's logits are summed the same way, each thread over its own columns.
template <typename T>
struct Plan {
  using Chunk = Chunking::Chunk;
  Parts parts;
  Chunking chunking;
  std::vector<Kernel<T>> kernels, projections, logits;  // one of each kind per distinct width
  bool ok = true;
  // width: the projection's inner dimension (d or k), 0 for none; classes: the logits' k, 0
  // for none.
  Plan(int64_t B, int64_t n, int count, int64_t width, int64_t classes) : parts(n, count) {
    // Measured on the shapes of the benchmark: 32-column chunks for up to 32 rows, 64 above.
    ok = chunking.build(parts, count, B > 32 ? 64 : 32, [&](int64_t m) {
      kernels.emplace_back(m, B, n, m, n, n, true);
      if (width > 0) projections.emplace_back(m, B, width, m, width, n, false);
      if (classes > 0) logits.emplace_back(classes, B, m, classes, n, classes, true);
      return kernels.back().fn && (width <= 0 || projections.back().fn) && (classes <= 0 || logits.back().fn);
    });
  }
  // Copies part p's chunks of the row-major rows × n matrix M into `packed` (chunk [c0, c1)
  // at offset c0 · rows). Each part packs its own, so its chunks start out in its core's cache.
  void pack(int p, int64_t rows, int64_t n, const T* M, T* packed) const {
    for (const Chunk& c : chunking.chunks[size_t(p)]) {
      const int64_t m = c.c1 - c.c0;
      T* dst = packed + c.c0 * rows;
      for (int64_t k = 0; k < rows; ++k) std::copy(M + k * n + c.c0, M + k * n + c.c1, dst + k * m);
    }
  }
  // Runs f(chunk) over part p's chunks in step t's direction; chunk.kernel indexes the kernels.
  template <typename F>
  void visit(int p, int64_t t, F&& f) const {
    const std::vector<Chunk>& cs = chunking.chunks[size_t(p)];
    if (t % 2 == 0)
      for (const Chunk& c : cs) f(c);
    else
      for (auto it = cs.rbegin(); it != cs.rend(); ++it) f(*it);
  }
};

// Runs a recurrence's steps, each split into parts (column ranges), on the team or all on
// the caller. Which is faster depends on the machine's load as much as on the shape: with more
// runnable threads than cores the OS deschedules helpers in the middle of their parts, and a
// barrier per step can cost more than the second core gains. So long recurrences time both:
// kProbe steps on the team, then kProbe alone, keep the faster for kReprobe steps, and measure
// again. `columns`: the width the parts split (at least 32 columns each).
class Stepper {
 public:
  // The team is held (its helpers woken) only for a recurrence that splits: at least 64
  // columns, and more than one thread allowed to the calling context.
  Stepper(int64_t steps, int64_t columns) {
    const int want = std::min({SpinTeam::instance().size(), int(std::max<int64_t>(1, columns / 32)), threadCap()});
    if (want > 1) session_.emplace(SpinTeam::instance());
    count_ = session_ && session_->acquired() ? want : 1;
    probe_ = count_ > 1 && steps >= 8 * kProbe;
  }
  int parts() const { return count_; }
  // job(p) for every part once, on the team (packing).
  void once(const std::function<void(int)>& job) {
    if (count_ == 1) job(0);
    else SpinTeam::instance().run(count_, job);
  }
  // One step: every part, on the team or all on the caller.
  void step(const std::function<void(int)>& body) {
    if (count_ == 1) {
      body(0);
      return;
    }
    const int64_t phase = step_++ % kReprobe;
    if (phase == 0 && alone_) {
      SpinTeam::instance().resume();
      alone_ = false;
    }
    const bool probing = probe_ && phase < 2 * kProbe;
    const Clock::time_point start = probing ? Clock::now() : Clock::time_point();
    if (alone_) {
      for (int p = 0; p < count_; ++p) body(p);
    } else {
      SpinTeam::instance().run(count_, body);
    }
    if (!probing) return;
    // The first steps on the team pay for waking the helpers: not counted.
    if (phase >= 2) (phase < kProbe ? team_ : alone_time_) += Clock::now() - start;
    if (phase == kProbe - 1) {
      alone_ = true;
      SpinTeam::instance().pause();
      alone_time_ = Clock::duration::zero();
    } else if (phase == 2 * kProbe - 1) {
      // Compare like with like: the team's kProbe − 2 measured steps, scaled.
      alone_ = alone_time_ * (kProbe - 2) < team_ * kProbe;
      if (!alone_) SpinTeam::instance().resume();
      team_ = Clock::duration::zero();
    }
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr int64_t kProbe = 16, kReprobe = 512;
  std::optional<SpinTeam::Session> session_;
  int count_ = 1;
  bool probe_ = false;  // for recurrences long enough to afford it
  int64_t step_ = 0;
  bool alone_ = false;
  Clock::duration team_{}, alone_time_{};
};

// One Elman recurrence on the team: holds it, splits the columns, and runs each step's parts.
// `ok` is false when the fast path does not apply (W's share too big for L2, no kernel).
template <typename T>
class Recurrence {
 public:
  // width: the inner dimension of the projection folded into the steps; classes: the logits'
  // k (0 for none).
  Recurrence(int64_t steps, int64_t B, int64_t n, int64_t width, int64_t classes = 0)
      : stepper_(steps, n), n_(n), width_(width) {
    if (fitsCache(n, sizeof(T), stepper_.parts())) {
      plan_.emplace(B, n, stepper_.parts(), width, classes);
      if (!plan_->ok) plan_.reset();
    }
  }
  bool ok() const { return plan_.has_value(); }
  int parts() const { return stepper_.parts(); }
  const Plan<T>& plan() const { return *plan_; }
  // Packs the recurrent matrix (row-major n × n) and the projection's (width × n, when
  // given) for the plan, each part on its own thread. The copies live as long as this.
  void pack(const T* M, const T* projection) {
    packed_.reset(new T[size_t(n_ * n_)]);
    if (projection) packedProjection_.reset(new T[size_t(width_ * n_)]);
    stepper_.once([&](int p) {
      plan_->pack(p, n_, n_, M, packed_.get());
      if (projection) plan_->pack(p, width_, n_, projection, packedProjection_.get());
    });
  }
  // A chunk's packed block of the recurrent matrix and of the projection's.
  const T* matrix(int64_t c0) const { return packed_.get() + c0 * n_; }
  const T* projection(int64_t c0) const { return packedProjection_.get() + c0 * width_; }
  void step(const std::function<void(int)>& body) { stepper_.step(body); }

 private:
  Stepper stepper_;
  int64_t n_, width_;
  std::optional<Plan<T>> plan_;
  std::unique_ptr<T[]> packed_, packedProjection_;
};

// The element-wise half of each step (the activation forward; φ' and the norm and bias sums
// backward) runs once per step on a B × (c1 − c0) block, as long as the product beside it at
// n = 128: compiled for AVX-512 and AVX2 as well as the baseline, chosen when the addon loads.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define ORTHORNN_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef ORTHORNN_SIMD_CLONES
#define ORTHORNN_SIMD_CLONES
#endif

template <typename T>
__attribute__((always_inline)) inline void activateBlock(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1,
                                                         const T* __restrict At, const T* __restrict bias,
                                                         T* __restrict Hnext) {
  // One loop per activation, so that each inner loop is branch-free.
  switch (act) {
    case Activation::Tanh:
      for (int64_t r = 0; r < B; ++r)
        for (int64_t c = c0; c < c1; ++c) Hnext[r * n + c] = tanhOf(At[r * n + c] + bias[c]);
      break;
    case Activation::Relu:
      for (int64_t r = 0; r < B; ++r)
        for (int64_t c = c0; c < c1; ++c) Hnext[r * n + c] = activate<T>(Activation::Relu, At[r * n + c] + bias[c]);
      break;
    default:
      for (int64_t r = 0; r < B; ++r)
        for (int64_t c = c0; c < c1; ++c) Hnext[r * n + c] = At[r * n + c] + bias[c];
  }
}

template <typename T>
__attribute__((always_inline)) inline double derivativeBlock(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1,
                                                             const T* __restrict dHt, const T* __restrict Ht,
                                                             T* __restrict dAt, double* __restrict bias,
                                                             double* __restrict squares, T clip) {
  // clip: the element-wise bound on dA (the authors' pre-activation gradient clipping);
  // +∞ when off, so the select below leaves every value (NaN included) as it is.
  // Squares summed per column first: a single running sum would be a reduction that the
  // compiler may not reorder, and so would keep the loop scalar.
  for (int64_t c = c0; c < c1; ++c) squares[c] = 0;
  const auto rows = [&](auto derivative) {
    for (int64_t r = 0; r < B; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const T g = dHt[r * n + c];
        const T raw = g * derivative(Ht[r * n + c]);
        const T a = raw > clip ? clip : (raw < -clip ? -clip : raw);
        dAt[r * n + c] = a;
        squares[c] += double(g) * double(g);
        bias[c] += double(a);
      }
    }
  };
  // One loop per activation, so that each inner loop is branch-free.
  switch (act) {
    case Activation::Tanh: rows([](T h) { return activationDerivativeFromOutput<T>(Activation::Tanh, h); }); break;
    case Activation::Relu: rows([](T h) { return activationDerivativeFromOutput<T>(Activation::Relu, h); }); break;
    default: rows([](T) { return T(1); });
  }
  double sq = 0;
  for (int64_t c = c0; c < c1; ++c) sq += squares[c];
  return sq;
}

ORTHORNN_SIMD_CLONES void activateBlockOf(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1, const float* At,
                                          const float* bias, float* Hnext) {
  activateBlock<float>(act, B, n, c0, c1, At, bias, Hnext);
}
ORTHORNN_SIMD_CLONES void activateBlockOf(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1, const double* At,
                                          const double* bias, double* Hnext) {
  activateBlock<double>(act, B, n, c0, c1, At, bias, Hnext);
}
ORTHORNN_SIMD_CLONES double derivativeBlockOf(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1,
                                              const float* dHt, const float* Ht, float* dAt, double* bias,
                                              double* squares, float clip) {
  return derivativeBlock<float>(act, B, n, c0, c1, dHt, Ht, dAt, bias, squares, clip);
}
ORTHORNN_SIMD_CLONES double derivativeBlockOf(Activation act, int64_t B, int64_t n, int64_t c0, int64_t c1,
                                              const double* dHt, const double* Ht, double* dAt, double* bias,
                                              double* squares, double clip) {
  return derivativeBlock<double>(act, B, n, c0, c1, dHt, Ht, dAt, bias, squares, clip);
}

// totals[j · n + c] += Σ_b small[b · s + j] · wide[b · n + c] for j < s, c0 ≤ c < c1: one
// step's share of a weight gradient over all T·B rows (dAᵀ X, dYᵀ H), while the step's block
// is in L1. The step's B rows are summed in the element type, the steps' sums in double.
template <typename T>
__attribute__((always_inline)) inline void accumulateOuter(int64_t B, int64_t s, const T* __restrict small, int64_t n,
                                                           int64_t c0, int64_t c1, const T* __restrict wide,
                                                           double* __restrict totals) {
  constexpr int64_t kStrip = 64;
  for (int64_t a = c0; a < c1; a += kStrip) {
    const int64_t w = std::min(kStrip, c1 - a);
    for (int64_t j = 0; j < s; ++j) {
      T part[kStrip] = {};
      for (int64_t b = 0; b < B; ++b) {
        const T f = small[b * s + j];
        const T* __restrict row = wide + b * n + a;
        for (int64_t c = 0; c < w; ++c) part[c] += f * row[c];
      }
      double* __restrict total = totals + j * n + a;
      for (int64_t c = 0; c < w; ++c) total[c] += double(part[c]);
    }
  }
}
ORTHORNN_SIMD_CLONES void accumulateOuterOf(int64_t B, int64_t s, const float* small, int64_t n, int64_t c0, int64_t c1,
                                            const float* wide, double* totals) {
  accumulateOuter<float>(B, s, small, n, c0, c1, wide, totals);
}
ORTHORNN_SIMD_CLONES void accumulateOuterOf(int64_t B, int64_t s, const double* small, int64_t n, int64_t c0,
                                            int64_t c1, const double* wide, double* totals) {
  accumulateOuter<double>(B, s, small, n, c0, c1, wide, totals);
}

bool applies(DType dt, int64_t B, int64_t n) {
  return (dt == DType::F32 || dt == DType::F64) && B >= 1 && n >= 1 && B * n <= (int64_t(1) << 24);
}

template <typename T>
bool forward(Activation act, int64_t T_, int64_t B, int64_t n, const T* Wt, const T* bias, const T* X, const T* W_in,
             int64_t d, const T* W_out, int64_t k, int64_t from, T* Y, T* A, T* H) {
  Recurrence<T> rec(T_, B, n, X ? d : 0, W_out ? k : 0);
  if (!rec.ok()) return false;
  const Plan<T>& plan = rec.plan();
  std::vector<T> W_inT;  // d × n: packed like the recurrent matrix
  if (X) {
    W_inT.resize(size_t(d * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) W_inT[size_t(j * n + i)] = W_in[i * d + j];
  }
  rec.pack(Wt, X ? W_inT.data() : nullptr);
  // The logits: W_outᵀ (n × k, so that a chunk's rows are one block), and each part's sums
  // over its own columns, added up after the steps.
  const int count = rec.parts();
  const int64_t rows = W_out ? (T_ - from) * B : 0;
  std::vector<T> W_outT(W_out ? size_t(n * k) : 0), partial(size_t(count * rows * k), T(0));
  for (int64_t j = 0; j < (W_out ? k : 0); ++j)
    for (int64_t c = 0; c < n; ++c) W_outT[size_t(c * k + j)] = W_out[j * n + c];
  int64_t t = 0;
  const std::function<void(int)> step = [&](int p) {
    T* At = A + t * B * n;
    const T* Hprev = H + t * B * n;
    T* Hnext = H + (t + 1) * B * n;
    T* Yt = W_out && t >= from ? partial.data() + p * rows * k + (t - from) * B * k : nullptr;
    // Column-major view: A_t[:, c0:c1]ᵀ (= (W_inᵀ's columns c0:c1)ᵀ · X_tᵀ) += (Wt's columns
    // c0:c1)ᵀ · Hprevᵀ, chunk by chunk, each chunk's activation (and its share of the logits)
    // while its block is in L1.
    plan.visit(p, t, [&](const typename Plan<T>::Chunk& c) {
      if (X) plan.projections[c.kernel].fn(rec.projection(c.c0), X + t * B * d, At + c.c0);
      plan.kernels[c.kernel].fn(rec.matrix(c.c0), Hprev, At + c.c0);
      activateBlockOf(act, B, n, c.c0, c.c1, At, bias, Hnext);
      if (Yt) plan.logits[c.kernel].fn(W_outT.data() + c.c0 * k, Hnext + c.c0, Yt);
    });
    clearUpperVectorState();
  };
  for (t = 0; t < T_; ++t) rec.step(step);
  for (int64_t i = 0; i < rows * k; ++i) {
    T sum = partial[size_t(i)];
    for (int p = 1; p < count; ++p) sum += partial[size_t(p * rows * k + i)];
    Y[i] = sum;
  }
  return true;
}

template <typename T>
bool backward(Activation act, int64_t T_, int64_t B, int64_t n, const T* W, const T* H, const T* X, int64_t d,
              const T* dY, const T* W_out, int64_t k, T* dH, T* dA, const BackwardSums& sums, int64_t givenFrom,
              double clip) {
  Recurrence<T> rec(T_, B, n, dY ? k : 0);
  const T bound = clip > 0 ? T(clip) : std::numeric_limits<T>::infinity();
  if (!rec.ok()) return false;
  const Plan<T>& plan = rec.plan();
  rec.pack(W, dY ? W_out : nullptr);
  const int count = rec.parts();
  // Each part owns its columns: it sums their squares per step, their dA into db and their
  // shares of dW_in (as dW_inᵀ, d × n) and dW_out (k × n) with no sharing, while the blocks
  // are still in cache.
  std::vector<double> squares(size_t(count) * size_t(T_), 0.0), bias(size_t(n), 0.0), columnSquares(static_cast<size_t>(n), 0.0);
  std::vector<double> inTotals(sums.dW_in ? size_t(d * n) : 0, 0.0), outTotals(sums.dW_out ? size_t(k * n) : 0, 0.0);
  int64_t t = 0;
  const std::function<void(int)> step = [&](int p) {
    const int64_t c0 = plan.parts.begin(p), c1 = plan.parts.end(p);
    if (c1 <= c0) return;
    T* dHt = dH + t * B * n;
    // A block not given is zero: cleared here, while it is about to be in cache anyway.
    if (t < givenFrom)
      for (int64_t r = 0; r < B; ++r) std::fill(dHt + r * n + c0, dHt + r * n + c1, T(0));
    const bool project = dY && t >= givenFrom;
    const T* dYt = project ? dY + (t - givenFrom) * B * k : nullptr;
    if (t + 1 < T_ || project) {
      const T* dAnext = dA + (t + 1) * B * n;
      plan.visit(p, t, [&](const typename Plan<T>::Chunk& c) {
        if (project) plan.projections[c.kernel].fn(rec.projection(c.c0), dYt, dHt + c.c0);
        if (t + 1 < T_) plan.kernels[c.kernel].fn(rec.matrix(c.c0), dAnext, dHt + c.c0);
      });
    }
    const T* Ht = H + (t + 1) * B * n;
    T* dAt = dA + t * B * n;
    const double sq = derivativeBlockOf(act, B, n, c0, c1, dHt, Ht, dAt, bias.data(), columnSquares.data(), bound);
    squares[size_t(p) * size_t(T_) + size_t(t)] = sq;
    if (sums.dW_in) accumulateOuterOf(B, d, X + t * B * d, n, c0, c1, dAt, inTotals.data());
    if (sums.dW_out && project) accumulateOuterOf(B, k, dYt, n, c0, c1, Ht, outTotals.data());
    clearUpperVectorState();
  };
  for (t = T_ - 1; t >= 0; --t) rec.step(step);
  if (sums.hiddenNorms) {
    T* norms = static_cast<T*>(sums.hiddenNorms);
    for (int64_t s = 0; s < T_; ++s) {
      double total = 0;
      for (int p = 0; p < count; ++p) total += squares[size_t(p) * size_t(T_) + size_t(s)];
      norms[s] = T(std::sqrt(total));
    }
  }
  if (sums.db)
    for (int64_t c = 0; c < n; ++c) static_cast<T*>(sums.db)[c] = T(bias[size_t(c)]);
  if (sums.dW_in)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < d; ++j) static_cast<T*>(sums.dW_in)[c * d + j] = T(inTotals[size_t(j * n + c)]);
  if (sums.dW_out)
    for (size_t i = 0; i < outTotals.size(); ++i) static_cast<T*>(sums.dW_out)[i] = T(outTotals[i]);
  return true;
}

// The LSTM recurrence, on the team like the Elman one. Each part owns a range of hidden units
// (and so the same range of each gate's columns) in chunks of at most 64 units; per step and
// chunk it runs the products as JIT kernels on its rows of W_hh, packed contiguously once per
// call (BLAS re-packs W_hh at every one of the 2T calls: measured, the products ran at about
// half the rate), then the cell update of its units right after, in one vectorised pass per row
// with the biases summed once. Column-major view: forward Z_tᵀ (4n × B) += W_hh (4n × n) ·
// H_tᵀ (n × B), a chunk's four gate slices of rows; backward dH_tᵀ (n × B) += W_hhᵀ (n × 4n) ·
// dZ_{t+1}ᵀ (4n × B), a chunk's rows; the backward steps also add their share of ∂L/∂W_hh
// (docs/math.md (M33)) and of the bias sums while dZ_t is in cache. Applies while W_hh fits the
// L2 cache, as the Elman path.
constexpr int64_t kLstmChunk = 64;

// One row's cell update for m units, each gate's m values n apart, as functions of
// restrict-qualified arguments: only then does the compiler know the streams apart and
// vectorise the loop. The float32 ones also run as AVX2 and AVX-512 clones; with contraction
// off every clone rounds as the baseline does.
#define ORTHORNN_LSTM_ROW_FORWARD(T)                                                    \
  T* __restrict zf = z + n;                                                             \
  T* __restrict zg = z + 2 * n;                                                         \
  T* __restrict zo = z + 3 * n;                                                         \
  for (int64_t j = 0; j < m; ++j) {                                                     \
    T i = z[j] + bias[j], f = zf[j] + bias[n + j], g = zg[j] + bias[2 * n + j],         \
      o = zo[j] + bias[3 * n + j], cj, hj;                                              \
    lstmCellForwardAt<T>(i, f, g, o, cPrev[j], cj, hj);                                 \
    z[j] = i;                                                                           \
    zf[j] = f;                                                                          \
    zg[j] = g;                                                                          \
    zo[j] = o;                                                                          \
    c[j] = cj;                                                                          \
    h[j] = hj;                                                                          \
  }
#define ORTHORNN_LSTM_ROW_BACKWARD(T)                                                   \
  T* __restrict zf = z + n;                                                             \
  T* __restrict zg = z + 2 * n;                                                         \
  T* __restrict zo = z + 3 * n;                                                         \
  for (int64_t j = 0; j < m; ++j) {                                                     \
    T i = z[j], f = zf[j], g = zg[j], o = zo[j], carry = dc[j];                         \
    lstmCellBackwardAt<T>(i, f, g, o, cPrev[j], c[j], dh[j], carry);                    \
    z[j] = i;                                                                           \
    zf[j] = f;                                                                          \
    zg[j] = g;                                                                          \
    zo[j] = o;                                                                          \
    dc[j] = carry;                                                                      \
  }

ORTHORNN_SIMD_CLONES
void lstmRowForward(int64_t m, int64_t n, const float* __restrict bias, float* __restrict z,
                    const float* __restrict cPrev, float* __restrict c, float* __restrict h) {
  ORTHORNN_LSTM_ROW_FORWARD(float)
}
void lstmRowForward(int64_t m, int64_t n, const double* __restrict bias, double* __restrict z,
                    const double* __restrict cPrev, double* __restrict c, double* __restrict h) {
  ORTHORNN_LSTM_ROW_FORWARD(double)
}
ORTHORNN_SIMD_CLONES
void lstmRowBackward(int64_t m, int64_t n, float* __restrict z, const float* __restrict cPrev,
                     const float* __restrict c, const float* __restrict dh, float* __restrict dc) {
  ORTHORNN_LSTM_ROW_BACKWARD(float)
}
void lstmRowBackward(int64_t m, int64_t n, double* __restrict z, const double* __restrict cPrev,
                     const double* __restrict c, const double* __restrict dh, double* __restrict dc) {
  ORTHORNN_LSTM_ROW_BACKWARD(double)
}
#undef ORTHORNN_LSTM_ROW_FORWARD
#undef ORTHORNN_LSTM_ROW_BACKWARD

// The chunks of every part (Chunking, over the units), their kernels, and W_hh packed for
// them: forward, chunk [c0, c1) holds its four gates' rows (gate q's m × n block at c0 · 4n +
// q · m · n, element (i, k) at k · m + i); backward, its rows of W_hhᵀ (m × 4n at c0 · 4n,
// element (i, k) at k · m + i).
template <typename T>
class LstmRecurrence {
 public:
  using Chunk = Chunking::Chunk;
  // backward: the kernels of dH_t's products, and with `weightSums` those of the W_hh
  // gradient's: Y (dW_hh, 4n × n column-major) += the chunk's rows of dZ_tᵀ (m × B, lda 4n)
  // · H_t (B × n, column-major, from H_t transposed).
  LstmRecurrence(int64_t steps, int64_t B, int64_t n, bool backward, bool weightSums = false)
      : stepper_(steps, n), parts_(n, stepper_.parts()), n_(n) {
    if (!fitsCache(2 * n, sizeof(T), stepper_.parts())) return;  // 4n² values
    ok_ = chunking_.build(parts_, stepper_.parts(), kLstmChunk, [&](int64_t m) {
      if (backward) kernels_.emplace_back(m, B, 4 * n, m, 4 * n, n, true);
      else kernels_.emplace_back(m, B, n, m, n, 4 * n, true);
      if (weightSums) sumKernels_.emplace_back(m, n, B, 4 * n, B, 4 * n, true);
      return kernels_.back().fn && (!weightSums || sumKernels_.back().fn);
    });
  }
  bool ok() const { return ok_; }
  // Packs W_hh (row-major 4n × n) for the chunks, each part its own.
  void pack(const T* Whh, bool backward) {
    const int64_t n = n_;
    packed_.reset(new T[size_t(4 * n * n)]);
    stepper_.once([&](int p) {
      for (const Chunk& c : chunking_.chunks[size_t(p)]) {
        const int64_t m = c.c1 - c.c0;
        T* dst = packed_.get() + c.c0 * 4 * n;
        if (backward) {
          for (int64_t k = 0; k < 4 * n; ++k)
            for (int64_t i = 0; i < m; ++i) dst[k * m + i] = Whh[k * n + c.c0 + i];
        } else {
          for (int64_t q = 0; q < 4; ++q)
            for (int64_t k = 0; k < n; ++k)
              for (int64_t i = 0; i < m; ++i) dst[q * m * n + k * m + i] = Whh[(q * n + c.c0 + i) * n + k];
        }
      }
    });
  }
  const std::vector<Chunk>& chunks(int p) const { return chunking_.chunks[size_t(p)]; }
  const Kernel<T>& kernel(const Chunk& c) const { return kernels_[c.kernel]; }
  const Kernel<T>& sumKernel(const Chunk& c) const { return sumKernels_[c.kernel]; }
  int parts() const { return stepper_.parts(); }
  const T* packed(int64_t c0) const { return packed_.get() + c0 * 4 * n_; }
  void step(const std::function<void(int)>& body) { stepper_.step(body); }

 private:
  Stepper stepper_;
  Parts parts_;
  Chunking chunking_;
  std::vector<Kernel<T>> kernels_, sumKernels_;
  std::unique_ptr<T[]> packed_;
  int64_t n_;
  bool ok_ = false;
};

template <typename T>
bool lstmForward(int64_t T_, int64_t B, int64_t n, const T* Whh, const T* biasIh, const T* biasHh, T* Z, T* H, T* C) {
  LstmRecurrence<T> rec(T_, B, n, false);
  if (!rec.ok()) return false;
  rec.pack(Whh, false);
  const int64_t n4 = 4 * n;
  std::vector<T> bias(size_t(n4), T(0));
  for (int64_t c = 0; c < n4; ++c) bias[size_t(c)] = (biasIh ? biasIh[c] : T(0)) + (biasHh ? biasHh[c] : T(0));
  int64_t t = 0;
  const std::function<void(int)> step = [&](int p) {
    T* Zt = Z + t * B * n4;
    const T* Ht = H + t * B * n;
    for (const auto& c : rec.chunks(p)) {
      const int64_t m = c.c1 - c.c0;
      const T* A = rec.packed(c.c0);
      for (int64_t q = 0; q < 4; ++q) rec.kernel(c).fn(A + q * m * n, Ht, Zt + q * n + c.c0);
      for (int64_t r = 0; r < B; ++r)
        lstmRowForward(m, n, bias.data() + c.c0, Zt + r * n4 + c.c0, C + t * B * n + r * n + c.c0,
                       C + (t + 1) * B * n + r * n + c.c0, H + (t + 1) * B * n + r * n + c.c0);
    }
  };
  for (t = 0; t < T_; ++t) rec.step(step);
  return true;
}

template <typename T>
bool lstmBackward(int64_t T_, int64_t B, int64_t n, const T* Whh, const T* C, T* Z, T* dH, T* dC,
                  const Backend::LstmSums& sums) {
  const bool weightSums = sums.dWhh != nullptr;
  LstmRecurrence<T> rec(T_, B, n, true, weightSums);
  if (!rec.ok()) return false;
  rec.pack(Whh, true);
  const int64_t n4 = 4 * n;
  const T* H = static_cast<const T*>(sums.H);
  // dW_hh accumulates in column-major order (Y: its transpose in memory), turned round once at
  // the end; each part transposes H_t for its own products; the bias sums accumulate in
  // double, each part over its own columns.
  std::vector<T> Y(weightSums ? size_t(n4 * n) : 0, T(0));
  std::vector<std::vector<T>> Ht(size_t(rec.parts()), std::vector<T>(weightSums ? size_t(B * n) : 0));
  std::vector<double> db(sums.db ? size_t(n4) : 0, 0.0);
  int64_t t = 0;
  const std::function<void(int)> step = [&](int p) {
    T* dHt = dH + t * B * n;
    T* Zt = Z + t * B * n4;
    if (weightSums) {
      T* ht = Ht[size_t(p)].data();
      const T* src = H + t * B * n;
      for (int64_t r = 0; r < B; ++r)
        for (int64_t i = 0; i < n; ++i) ht[i * B + r] = src[r * n + i];
    }
    for (const auto& c : rec.chunks(p)) {
      const int64_t m = c.c1 - c.c0;
      if (t + 1 < T_) rec.kernel(c).fn(rec.packed(c.c0), Z + (t + 1) * B * n4, dHt + c.c0);
      for (int64_t r = 0; r < B; ++r)
        lstmRowBackward(m, n, Zt + r * n4 + c.c0, C + t * B * n + r * n + c.c0, C + (t + 1) * B * n + r * n + c.c0,
                        dHt + r * n + c.c0, dC + r * n + c.c0);
      for (int64_t q = 0; q < 4; ++q) {
        const int64_t col = q * n + c.c0;
        if (weightSums) rec.sumKernel(c).fn(Zt + col, Ht[size_t(p)].data(), Y.data() + col);
        if (sums.db)
          for (int64_t r = 0; r < B; ++r) {
            const T* z = Zt + r * n4 + col;
            double* acc = db.data() + col;
            for (int64_t j = 0; j < m; ++j) acc[j] += double(z[j]);
          }
      }
    }
  };
  for (t = T_ - 1; t >= 0; --t) rec.step(step);
  if (weightSums) {
    T* out = static_cast<T*>(sums.dWhh);
    for (int64_t k = 0; k < n4; ++k)
      for (int64_t i = 0; i < n; ++i) out[k * n + i] = Y[size_t(i * n4 + k)];
  }
  if (sums.db)
    for (int64_t k = 0; k < n4; ++k) static_cast<T*>(sums.db)[k] = T(db[size_t(k)]);
  return true;
}

}  // namespace

bool fastLstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                               const void* biasHh, void* Z, void* H, void* C) {
  if (!applies(dt, B, n)) return false;
  if (dt == DType::F32)
    return lstmForward<float>(T, B, n, static_cast<const float*>(Whh), static_cast<const float*>(biasIh),
                              static_cast<const float*>(biasHh), static_cast<float*>(Z), static_cast<float*>(H),
                              static_cast<float*>(C));
  return lstmForward<double>(T, B, n, static_cast<const double*>(Whh), static_cast<const double*>(biasIh),
                             static_cast<const double*>(biasHh), static_cast<double*>(Z), static_cast<double*>(H),
                             static_cast<double*>(C));
}

bool fastLstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C, void* Z,
                                void* dH, void* dC, const Backend::LstmSums& sums) {
  if (!applies(dt, B, n) || (sums.dWhh && !sums.H)) return false;
  if (dt == DType::F32)
    return lstmBackward<float>(T, B, n, static_cast<const float*>(Whh), static_cast<const float*>(C),
                               static_cast<float*>(Z), static_cast<float*>(dH), static_cast<float*>(dC), sums);
  return lstmBackward<double>(T, B, n, static_cast<const double*>(Whh), static_cast<const double*>(C),
                              static_cast<double*>(Z), static_cast<double*>(dH), static_cast<double*>(dC), sums);
}

bool fastElmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                const void* bias, const Projection& input, const Logits& logits, void* A, void* H) {
  if (!applies(dt, B, n) || (logits.W_out && logits.k > kLogitsInStepsMaxClasses)) return false;
  const int64_t from = std::min(logits.from, T);
  if (dt == DType::F32)
    return forward<float>(act, T, B, n, static_cast<const float*>(Wt), static_cast<const float*>(bias),
                          static_cast<const float*>(input.x), static_cast<const float*>(input.w), input.width,
                          static_cast<const float*>(logits.W_out), logits.k, from, static_cast<float*>(logits.Y),
                          static_cast<float*>(A), static_cast<float*>(H));
  return forward<double>(act, T, B, n, static_cast<const double*>(Wt), static_cast<const double*>(bias),
                         static_cast<const double*>(input.x), static_cast<const double*>(input.w), input.width,
                         static_cast<const double*>(logits.W_out), logits.k, from, static_cast<double*>(logits.Y),
                         static_cast<double*>(A), static_cast<double*>(H));
}

bool fastElmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                 const void* H, const Projection& input, const Projection& output, void* dH, void* dA,
                                 const BackwardSums& sums, int64_t givenFrom, double clip) {
  if (!applies(dt, B, n)) return false;
  // The sums need their operands; without them, the op-by-op path says so.
  if ((sums.dW_in && !input.x) || (sums.dW_out && !output.x)) return false;
  givenFrom = std::min(givenFrom, T);
  if (dt == DType::F32)
    return backward<float>(act, T, B, n, static_cast<const float*>(W), static_cast<const float*>(H),
                           static_cast<const float*>(input.x), input.width, static_cast<const float*>(output.x),
                           static_cast<const float*>(output.w), output.width, static_cast<float*>(dH),
                           static_cast<float*>(dA), sums, givenFrom, clip);
  return backward<double>(act, T, B, n, static_cast<const double*>(W), static_cast<const double*>(H),
                          static_cast<const double*>(input.x), input.width, static_cast<const double*>(output.x),
                          static_cast<const double*>(output.w), output.width, static_cast<double*>(dH),
                          static_cast<double*>(dA), sums, givenFrom, clip);
}

bool fastRecurrenceCompiled() { return true; }

#endif

}  // namespace orthornn
