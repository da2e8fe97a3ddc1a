// Vectorised chunk primitives of the CPU categorical row loop.
//
// Float chunks are processed 8 values at a time with GCC/Clang vector extensions (lowered to whatever SIMD the
// target has), with a branch-free polynomial exp since std::exp is a library call that cannot be vectorised.
// Each float primitive is built twice, for x86-64-v3 (AVX2 + FMA) and the baseline, and the loader picks the one
// the CPU supports. The float64 gradient chunk (the precise path) is a plain loop over std::exp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/categorical_rows_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RIPT_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RIPT_CPU_CLONES
#endif
#define RIPT_ALWAYS_INLINE inline __attribute__((always_inline))
// The 32-byte vectors only pass between inlined helpers of this file, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ript {
namespace cpu_rows {
namespace {

constexpr int kWidth = 8;
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

RIPT_ALWAYS_INLINE f8 splat(float v) { return f8{} + v; }
RIPT_ALWAYS_INLINE f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
RIPT_ALWAYS_INLINE void store8(float* p, const f8& v) { std::memcpy(p, &v, sizeof v); }

// exp(x) for x <= 88 to within a few ulp: x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-7 Taylor
// polynomial (error < 6e-9 relative), 2^n assembled in the exponent bits. Below -87.3 it flushes to 0 (what
// would be a subnormal result); NaN stays NaN. Only called with x <= 0 plus rounding, hence no overflow path.
RIPT_ALWAYS_INLINE f8 exp8(const f8& x) {
  const f8 lo = splat(-87.3f), hi = splat(88.0f);
  const f8 round = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa
  const f8 xc = x < lo ? lo : (x > hi ? hi : x);
  const f8 shifted = xc * 1.44269504088896341f + round;
  const f8 n = shifted - round;
  const i8 ni = __builtin_bit_cast(i8, shifted) - __builtin_bit_cast(i8, round);
  f8 r = xc - n * 0.693145751953125f;  // ln 2 split in two so that n * ln2_hi is exact
  r = r - n * 1.428606765330187e-06f;
  f8 p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i8 bits = (ni + 127) << 23;
  const f8 y = p * __builtin_bit_cast(f8, bits);
  return x != x ? x : (x < lo ? splat(0.0f) : y);
}

RIPT_ALWAYS_INLINE float exp1(float x) { return exp8(splat(x))[0]; }

RIPT_ALWAYS_INLINE float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }

// The chunk loops: full vectors, then the tail through one padded vector.
template <typename Body>
RIPT_ALWAYS_INLINE void for_vectors(const float* x, int64_t n, float pad, const Body& body) {
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) body(i, load8(x + i), kWidth);
  if (i < n) {
    float tail[kWidth];
    for (int j = 0; j < kWidth; ++j) tail[j] = i + j < n ? x[i + j] : pad;
    body(i, load8(tail), static_cast<int>(n - i));
  }
}

}  // namespace

RIPT_CPU_CLONES float chunk_max(const float* x, int64_t n) {
  f8 m = splat(-std::numeric_limits<float>::infinity());
  for_vectors(x, n, -std::numeric_limits<float>::infinity(), [&](int64_t, const f8& v, int) {
    m = ((v > m) | (v != v)) ? v : m;
  });
  float out = m[0];
  for (int j = 1; j < kWidth; ++j) out = nan_max(out, m[j]);
  return out;
}

RIPT_CPU_CLONES float chunk_sum_exp(const float* x, int64_t n, float shift, float scale) {
  f8 acc = splat(0.0f);
  for_vectors(x, n, -std::numeric_limits<float>::infinity(),
              [&](int64_t, const f8& v, int) { acc += exp8((v - shift) * scale); });
  float out = 0;
  for (int j = 0; j < kWidth; ++j) out += acc[j];
  return out;
}

RIPT_CPU_CLONES void chunk_neg_softmax(const float* x, int64_t n, float scale, float lse, float c, float* out) {
  for_vectors(x, n, 0.0f, [&](int64_t i, const f8& v, int count) {
    const f8 g = -c * exp8(v * scale - lse);
    if (count == kWidth) {
      store8(out + i, g);
    } else {
      for (int j = 0; j < count; ++j) out[i + j] = g[j];
    }
  });
}

void chunk_neg_softmax(const double* x, int64_t n, double scale, double lse, double c, double* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = -c * std::exp(x[i] * scale - lse);
}

}  // namespace cpu_rows
}  // namespace ript
