// The CPU's fast Elman recurrence: small-matrix JIT kernels (libxsmm) for the per-step
// B × n · n × n products, which BLAS must re-pack every call, split by columns across the
// cores by a team of threads that spin (not sleep) for the duration of the recurrence, so a
// step costs one barrier instead of a thread wake-up. Each thread packs its columns of the
// recurrent matrix once per call, computes its columns of the input projection (forward) or
// of dY W_out (backward) in the same steps, applies the activation (or its derivative) to its
// own columns right after its product, and sums its share of db, dW_in and dW_out there. The
// caller takes over a helper's columns that the helper has not started, and long recurrences
// time the team against the caller alone every 512 steps and keep the faster: on a machine
// busier than it has cores, one thread can beat two that meet at a barrier every step. The
// LSTM's recurrence (below) runs on the same team and kernels, each thread owning a range of
// units across the four gates.
#pragma once
#include <cstdint>
#include "../core/backend.h"  // Projection
#include "../core/dtype.h"
#include "../core/elementwise.h"

namespace orthornn {

// Returns false (having done nothing) where the fast path does not apply: built without
// libxsmm, a matrix whose per-thread share exceeds the L2 cache (BLAS is faster there), or
// no JIT kernel for the shape.
// The forward sums the logits inside its steps for up to this many classes (a text's
// characters are around a hundred); with more it returns false, and the caller runs it
// without them and multiplies after.
constexpr int64_t kLogitsInStepsMaxClasses = 128;

// The arguments are Backend::elmanForwardRecurrence's and elmanBackwardRecurrence's.
bool fastElmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                const void* bias, const Projection& input, const Logits& logits, void* A, void* H);
bool fastElmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                 const void* H, const Projection& input, const Projection& output, void* dH, void* dA,
                                 const BackwardSums& sums, int64_t givenFrom, double clip);

// The LSTM's (Backend::lstmForwardRecurrence's and lstmBackwardRecurrence's arguments): on the
// team, JIT kernels over the packed W_hh, the backward with its weight and bias sums folded into
// the steps; false where it does not apply (no libxsmm, W_hh larger than the L2 cache, no kernel).
bool fastLstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                               const void* biasHh, void* Z, void* H, void* C);
bool fastLstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C, void* Z,
                                void* dH, void* dC, const Backend::LstmSums& sums);

// Whether this build has the fast path (for backends()).
bool fastRecurrenceCompiled();

}  // namespace orthornn
