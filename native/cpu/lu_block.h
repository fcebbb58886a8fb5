// The elimination the CPU backend's unpivoted LU factorisations (the recursive one in
// cpu_backend.cpp and the tiled one in solve.cpp) run on their diagonal blocks, in double.
#pragma once
#include <cmath>

namespace orthornn {

// Unpivoted LU in place of the column-major m × m block a (leading dimension m): unit-lower L
// below the diagonal, U on and above it. Returns the 1-based index of the first zero or
// non-finite pivot, where the elimination stops, or 0 when there is none.
inline int eliminateNoPivot(double* a, int m) {
  for (int k = 0; k < m; ++k) {
    const double pivot = a[k + k * m];
    if (pivot == 0 || !std::isfinite(pivot)) return k + 1;
    for (int i = k + 1; i < m; ++i) a[i + k * m] /= pivot;
    for (int j = k + 1; j < m; ++j) {
      const double u = a[k + j * m];
      for (int i = k + 1; i < m; ++i) a[i + j * m] -= a[i + k * m] * u;
    }
  }
  return 0;
}

}  // namespace orthornn
