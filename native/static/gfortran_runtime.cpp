// The one libgfortran routine that the LAPACK in Debian's static OpenBLAS (libopenblas.a)
// calls from the routines orthornn uses: _gfortran_concat_string, the Fortran `//` operator
// (xORMQR, xGESVD, ... build ILAENV's option strings with it). Linked only into the static
// build (ORTHORNN_STATIC=ON, the prebuilt platform packages) instead of libgfortran.a, which is
// not position-independent (its thread-local I/O state cannot go into a shared object) and
// would otherwise leave libgfortran.so.5 — absent from minimal systems — as a run-time
// dependency. The build checks that no other libgfortran symbol is left undefined.
//
// Same contract as libgfortran's intrinsics/string_intrinsics_inc.c (GCC >= 8, where the
// length type is size_t): dest receives s1 then s2, truncated to destlen, padded with blanks.
#include <cstddef>
#include <cstring>

extern "C" __attribute__((visibility("hidden"))) void _gfortran_concat_string(std::size_t destlen, char *dest, std::size_t len1, const char *s1,
                                                                              std::size_t len2, const char *s2) {
  if (len1 >= destlen) {
    std::memcpy(dest, s1, destlen);
    return;
  }
  std::memcpy(dest, s1, len1);
  dest += len1;
  destlen -= len1;
  if (len2 >= destlen) {
    std::memcpy(dest, s2, destlen);
    return;
  }
  std::memcpy(dest, s2, len2);
  std::memset(dest + len2, ' ', destlen - len2);
}
