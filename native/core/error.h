// The one exception type native code throws. `code` selects the JS class the binding
// raises (see lib/errors.ts); native code never exits or aborts.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace orthornn {

enum class ErrorCode {
  Type,         // wrong type of an argument          -> TypeError
  Range,        // bad shape or value                  -> RangeError
  Disposed,     // tensor or context used after dispose
  Numeric,      // singular matrix, no convergence, NaN/Inf where forbidden
  Unsupported,  // the backend does not implement the op for this dtype
  Device,       // device unavailable or a device/library call failed
  OutOfMemory,  // allocation failed
  Internal,     // a broken invariant: a bug in orthornn
};

inline const char* errorCodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::Type: return "ERR_ORTHORNN_TYPE";
    case ErrorCode::Range: return "ERR_ORTHORNN_RANGE";
    case ErrorCode::Disposed: return "ERR_ORTHORNN_DISPOSED";
    case ErrorCode::Numeric: return "ERR_ORTHORNN_NUMERIC";
    case ErrorCode::Unsupported: return "ERR_ORTHORNN_UNSUPPORTED";
    case ErrorCode::Device: return "ERR_ORTHORNN_DEVICE";
    case ErrorCode::OutOfMemory: return "ERR_ORTHORNN_OUT_OF_MEMORY";
    case ErrorCode::Internal: return "ERR_ORTHORNN_INTERNAL";
  }
  return "ERR_ORTHORNN_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// An error of one op among several queued as one task (a recorded sequence of ops): the context
// names that op in the failure, not the task.
class OpError : public Error {
 public:
  OpError(ErrorCode code, const std::string& message, std::string op) : Error(code, message), op_(std::move(op)) {}
  const std::string& op() const { return op_; }

 private:
  std::string op_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

inline void require(bool ok, ErrorCode code, const std::string& message) {
  if (!ok) throw Error(code, message);
}

}  // namespace orthornn
