// Keeping U and V on the orthogonal group (docs/math.md (M21)–(M26)).
#pragma once
#include "backend.h"
#include "workspace.h"

namespace orthornn {

// M ← (I + η/2 A)⁻¹ (I − η/2 A) M with A = G Mᵀ − M Gᵀ, by an LU solve (never an inverse).
// M and G are n×n; `ws` holds the scratch (slots 0..2).
void cayleyStep(Backend& b, DType dt, int64_t n, void* M, const void* G, double lr, Workspace& ws);

// The same step taken in M's own frame, from F = MᵀG (what elmanLossAndGradients gives as
// frame gradients): M ← M (I + η/2 A′)⁻¹ (I − η/2 A′) with A′ = F − Fᵀ = MᵀA M. For an
// orthogonal M it is cayleyStep's step, without the n×n product that forms A.
void cayleyStepInFrame(Backend& b, DType dt, int64_t n, void* M, const void* F, double lr, Workspace& ws);

// ‖MᵀM − I‖_max written to `out` (one element of dt).
void orthogonalityError(Backend& b, DType dt, int64_t n, const void* M, void* out, Workspace& ws);

// M ← Q of M = QR with diag(R) > 0: the nearest re-orthonormalisation that keeps column signs.
void reorthonormalize(Backend& b, DType dt, int64_t n, void* M, Workspace& ws);

}  // namespace orthornn
