// Element types of tensors. float32 and float64 carry math; int32 carries indices
// (class targets, LU pivots) and is never an operand of arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace orthornn {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2 };

inline size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
  }
  return "?";
}

inline bool isFloat(DType t) { return t == DType::F32 || t == DType::F64; }

}  // namespace orthornn
