// The bodies of the tensor ops of native/ops.json. Each starts from a Call whose arguments
// have been checked against the op's slots (kinds, the context, dtypes, element counts,
// squareness), adds the shape rules that are its own, and queues plain C++ values: worker
// threads never touch JS values. The messages users see for wrong shapes come from lib/ops.ts
// first; these checks keep the addon memory-safe when it is called directly.
#include <algorithm>
#include <cmath>

#include "binding.h"

namespace orthornn::napi::bodies {
namespace {

// Rows × cols view of a tensor: the last dimension is cols.
int64_t lastDim(const Tensor& t) { return t.shape.empty() ? 1 : t.shape.back(); }
int64_t rowsOf(const Tensor& t) {
  const int64_t cols = lastDim(t);
  return cols ? t.numel() / cols : 0;
}

}  // namespace

void fill(Call& c) {
  const Tensor t = c.tensor("tensor");
  const double v = c.number("value");
  if (t.dtype == DType::I32 && !(v >= -2147483648.0 && v <= 2147483647.0 && v == std::floor(v)))
    c.fail(ErrorCode::Range, "value", "an int32 for an int32 tensor", describe(Napi::Number::New(c.env(), v)));
  c.enqueue([t, v](Backend& b) { b.fill(t.dtype, t.numel(), v, t.data()); });
}

void randomNormal(Call& c) {
  const Tensor t = c.tensor("tensor");
  const uint64_t seed = uint64_t(c.integer("seed"));
  const double mean = c.number("mean"), std = c.number("std");
  c.enqueue([=](Backend& b) { b.randomNormal(t.dtype, t.numel(), seed, mean, std, t.data()); });
}

void randomUniform(Call& c) {
  const Tensor t = c.tensor("tensor");
  const uint64_t seed = uint64_t(c.integer("seed"));
  const double lo = c.number("low"), hi = c.number("high");
  c.enqueue([=](Backend& b) { b.randomUniform(t.dtype, t.numel(), seed, lo, hi, t.data()); });
}

void copy(Call& c) {
  const Tensor src = c.tensor("source"), dst = c.tensor("out");
  c.enqueue([src, dst](Backend& b) { b.copy(dst.data(), src.data(), src.bytes()); });
}

// 2-D, or batched when out is 3-D (a or b may be 2-D and then shared by every batch entry).
void gemm(Call& c) {
  const Tensor a = c.tensor("a"), b = c.tensor("b"), out = c.tensor("out");
  const bool ta = c.boolean("transA"), tb = c.boolean("transB");
  const double alpha = c.number("alpha"), beta = c.number("beta");
  // batch is -1 for a matrix (shared by every batch entry), the leading size for a 3-D tensor.
  auto mat = [&](const Tensor& t, const char* name, int64_t& batch, int64_t& rows, int64_t& cols) {
    if (t.shape.size() == 2) { batch = -1; rows = t.shape[0]; cols = t.shape[1]; return; }
    if (t.shape.size() == 3) { batch = t.shape[0]; rows = t.shape[1]; cols = t.shape[2]; return; }
    c.fail(ErrorCode::Range, name, "2-D or 3-D", "shape " + shapeString(t.shape));
  };
  int64_t ba, ra, ca, bb, rb, cb, bc, rc, cc;
  mat(a, "a", ba, ra, ca);
  mat(b, "b", bb, rb, cb);
  mat(out, "out", bc, rc, cc);
  const int64_t m = ta ? ca : ra, k = ta ? ra : ca, kb = tb ? cb : rb, n = tb ? rb : cb;
  if (k != kb)
    throwError(c.env(), ErrorCode::Range, "gemm: inner dimensions differ: op(a) is " + std::to_string(m) + "×" +
                                              std::to_string(k) + ", op(b) is " + std::to_string(kb) + "×" + std::to_string(n));
  if (rc != m || cc != n)
    c.fail(ErrorCode::Range, "out", std::to_string(m) + "×" + std::to_string(n), "shape " + shapeString(out.shape));
  const int64_t batch = bc >= 0 ? bc : 1;
  // A 3-D operand must have out's batch size (a 3-D one of batch 0 is not a shared matrix).
  if ((ba >= 0 && (bc < 0 || ba != bc)) || (bb >= 0 && (bc < 0 || bb != bc)))
    throwError(c.env(), ErrorCode::Range, "gemm: batch sizes differ: a " + shapeString(a.shape) + ", b " +
                                              shapeString(b.shape) + ", out " + shapeString(out.shape));
  const int64_t sA = ba >= 0 ? ra * ca : 0, sB = bb >= 0 ? rb * cb : 0, sC = rc * cc;
  c.enqueue([=](Backend& be) {
    if (batch == 1 && out.shape.size() == 2)
      be.gemm(a.dtype, ta, tb, m, n, k, alpha, a.data(), ca, b.data(), cb, beta, out.data(), cc);
    else
      be.gemmStridedBatched(a.dtype, ta, tb, m, n, k, alpha, a.data(), ca, sA, b.data(), cb, sB, beta, out.data(), cc,
                            sC, batch);
  });
}

// lu ← LU factors of a (a is left untouched unless lu is a).
void luFactor(Call& c) {
  const Tensor a = c.tensor("a"), lu = c.tensor("lu"), piv = c.tensor("pivots");
  const int64_t n = a.shape[0];
  c.requireNumel("pivots", n);
  c.enqueue([=](Backend& b) {
    b.copy(lu.data(), a.data(), a.bytes());
    b.luFactor(a.dtype, n, lu.data(), static_cast<int32_t*>(piv.data()));
  });
}

// out ← A⁻¹ b, b an n-vector or n×r matrix.
void luSolve(Call& c) {
  const Tensor lu = c.tensor("lu"), piv = c.tensor("pivots"), rhs = c.tensor("b"), x = c.tensor("out");
  const int64_t n = lu.shape[0];
  c.requireNumel("pivots", n);
  if (rhs.shape.empty() || rhs.shape[0] != n || rhs.shape.size() > 2)
    c.fail(ErrorCode::Range, "b", "of shape [" + std::to_string(n) + "] or [" + std::to_string(n) + ", r]", shapeString(rhs.shape));
  const int64_t nrhs = rhs.shape.size() == 2 ? rhs.shape[1] : 1;
  c.enqueue([=](Backend& b) {
    b.copy(x.data(), rhs.data(), rhs.bytes());
    b.luSolve(lu.dtype, n, nrhs, lu.data(), static_cast<const int32_t*>(piv.data()), x.data());
  });
}

void qr(Call& c) {
  const Tensor a = c.tensor("a"), q = c.tensor("q"), r = c.tensor("r");
  if (a.shape.size() != 2) c.fail(ErrorCode::Range, "a", "a matrix", "shape " + shapeString(a.shape));
  const int64_t m = a.shape[0], n = a.shape[1], k = std::min(m, n);
  c.requireNumel("q", m * k);
  c.requireNumel("r", k * n);
  c.enqueue([=](Backend& b) { b.qr(a.dtype, m, n, a.data(), q.data(), r.data()); });
}

void svd(Call& c) {
  const Tensor a = c.tensor("a"), u = c.tensor("u"), s = c.tensor("s"), vt = c.tensor("vt");
  if (a.shape.size() != 2) c.fail(ErrorCode::Range, "a", "a matrix", "shape " + shapeString(a.shape));
  const int64_t m = a.shape[0], n = a.shape[1], k = std::min(m, n);
  c.requireNumel("u", m * k);
  c.requireNumel("s", k);
  c.requireNumel("vt", k * n);
  c.enqueue([=](Backend& b) { b.svd(a.dtype, m, n, a.data(), u.data(), s.data(), vt.data()); });
}

void axpby(Call& c) {
  const double alpha = c.number("alpha"), beta = c.number("beta");
  const Tensor x = c.tensor("x"), y = c.tensor("y"), out = c.tensor("out");
  c.enqueue([=](Backend& b) { b.axpby(x.dtype, x.numel(), alpha, x.data(), beta, y.data(), out.data()); });
}

void mul(Call& c) {
  const Tensor x = c.tensor("x"), y = c.tensor("y"), out = c.tensor("out");
  c.enqueue([=](Backend& b) { b.mul(x.dtype, x.numel(), x.data(), y.data(), out.data()); });
}

void scaleColumns(Call& c) {
  const Tensor x = c.tensor("x"), s = c.tensor("s"), out = c.tensor("out");
  const int64_t cols = lastDim(x), rows = rowsOf(x);
  c.requireNumel("s", cols);
  c.enqueue([=](Backend& b) { b.scaleColumns(x.dtype, rows, cols, x.data(), s.data(), out.data()); });
}

void rmspropStep(Call& c) {
  const Tensor p = c.tensor("param"), g = c.tensor("grad"), ms = c.tensor("meanSquare");
  const double lr = c.number("lr"), rho = c.number("rho"), eps = c.number("eps"), decay = c.number("weightDecay");
  const bool epsInside = c.boolean("epsInside");
  c.enqueue([=](Backend& b) { b.rmspropStep(p.dtype, p.numel(), lr, rho, eps, epsInside, decay, p.data(), g.data(), ms.data()); });
}

void adamStep(Call& c) {
  const Tensor p = c.tensor("param"), g = c.tensor("grad"), m = c.tensor("m"), v = c.tensor("v");
  const double lr = c.number("lr"), b1 = c.number("beta1"), b2 = c.number("beta2"), eps = c.number("eps"),
               decay = c.number("weightDecay");
  const int64_t step = c.integer("step");
  c.enqueue([=](Backend& b) { b.adamStep(p.dtype, p.numel(), lr, b1, b2, eps, decay, step, p.data(), g.data(), m.data(), v.data()); });
}

void sgdStep(Call& c) {
  const Tensor p = c.tensor("param"), g = c.tensor("grad"), buf = c.tensor("buffer");
  const double lr = c.number("lr"), mom = c.number("momentum"), decay = c.number("weightDecay");
  const bool first = c.boolean("first");
  c.enqueue([=](Backend& b) { b.sgdStep(p.dtype, p.numel(), lr, mom, decay, first, p.data(), g.data(), buf.data()); });
}

void biasActivation(Call& c) {
  const Tensor x = c.tensor("x"), out = c.tensor("out");
  const std::optional<Tensor> bias = c.optionalTensor("bias");
  const Activation act = c.activation("activation");
  const int64_t cols = lastDim(x), rows = rowsOf(x);
  if (bias) c.requireNumel("bias", cols);
  c.enqueue([=](Backend& b) { b.biasActivation(x.dtype, act, rows, cols, x.data(), bias ? bias->data() : nullptr, out.data()); });
}

void activationBackward(Call& c) {
  const Tensor dy = c.tensor("dy"), h = c.tensor("h"), out = c.tensor("out");
  const Activation act = c.activation("activation");
  c.enqueue([=](Backend& b) { b.activationBackward(dy.dtype, act, dy.numel(), dy.data(), h.data(), out.data()); });
}

void marginSigmoid(Call& c) {
  const Tensor p = c.tensor("p"), out = c.tensor("out");
  const double m = c.number("margin");
  c.enqueue([=](Backend& b) { b.marginSigmoid(p.dtype, p.numel(), m, p.data(), out.data()); });
}

void marginSigmoidBackward(Call& c) {
  const Tensor p = c.tensor("p"), ds = c.tensor("ds"), out = c.tensor("out");
  const double m = c.number("margin");
  c.enqueue([=](Backend& b) { b.marginSigmoidBackward(p.dtype, p.numel(), m, p.data(), ds.data(), out.data()); });
}

// kind 0 sum, 1 sum of squares, 2 max |x|, 3 count of non-finite (Reduction's values).
void reduce(Call& c) {
  const Tensor x = c.tensor("x"), out = c.tensor("out");
  const Reduction r = static_cast<Reduction>(c.integer("kind"));
  c.requireNumel("out", 1);
  c.enqueue([=](Backend& b) { b.reduce(x.dtype, r, x.numel(), x.data(), out.data()); });
}

void columnSum(Call& c) {
  const Tensor x = c.tensor("x"), out = c.tensor("out");
  const double beta = c.number("beta");
  const int64_t cols = lastDim(x), rows = rowsOf(x);
  c.requireNumel("out", cols);
  c.enqueue([=](Backend& b) { b.columnSum(x.dtype, rows, cols, x.data(), beta, out.data()); });
}

void groupNorms(Call& c) {
  const Tensor x = c.tensor("x"), out = c.tensor("out");
  if (x.shape.empty()) c.fail(ErrorCode::Range, "x", "at least 1-D", "shape []");
  const int64_t groups = x.shape[0], size = groups ? x.numel() / groups : 0;
  c.requireNumel("out", groups);
  c.enqueue([=](Backend& b) { b.groupNorms(x.dtype, groups, size, x.data(), out.data()); });
}

void softmaxCrossEntropy(Call& c) {
  const Tensor logits = c.tensor("logits"), targets = c.tensor("targets"), loss = c.tensor("loss");
  const std::optional<Tensor> w = c.optionalTensor("weights"), d = c.optionalTensor("dlogits");
  const int64_t classes = lastDim(logits), rows = rowsOf(logits);
  if (classes == 0) c.fail(ErrorCode::Range, "logits", "at least one class", "shape " + shapeString(logits.shape));
  c.requireNumel("targets", rows);
  if (w) c.requireNumel("weights", rows);
  c.requireNumel("loss", 1);
  c.enqueue([=](Backend& b) {
    b.softmaxCrossEntropy(logits.dtype, rows, classes, logits.data(), static_cast<const int32_t*>(targets.data()),
                          w ? w->data() : nullptr, loss.data(), d ? d->data() : nullptr);
  });
}

void meanSquaredError(Call& c) {
  const Tensor y = c.tensor("y"), t = c.tensor("target"), loss = c.tensor("loss");
  const std::optional<Tensor> w = c.optionalTensor("weights"), d = c.optionalTensor("dy");
  const int64_t cols = lastDim(y), rows = rowsOf(y);
  if (w) c.requireNumel("weights", rows);
  c.requireNumel("loss", 1);
  c.enqueue([=](Backend& b) {
    b.meanSquaredError(y.dtype, rows, cols, y.data(), t.data(), w ? w->data() : nullptr, loss.data(), d ? d->data() : nullptr);
  });
}

}  // namespace orthornn::napi::bodies
