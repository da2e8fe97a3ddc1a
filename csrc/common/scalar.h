// Scalar types and conversions shared by the CPU and CUDA kernels.
//
// Half-precision inputs are stored as raw 16-bit patterns and converted bitwise, so the very same inline
// functions run on the host and the device; all arithmetic accumulates in float (or double for double
// inputs), which is what `acc_t<T>` names.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define RIPT_HD __host__ __device__ __forceinline__
#else
#define RIPT_HD inline
#endif

namespace ript {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccType<T>::type;

RIPT_HD float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
RIPT_HD uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

RIPT_HD float to_float(BFloat16 v) { return bits_to_float(static_cast<uint32_t>(v.bits) << 16); }

RIPT_HD BFloat16 to_bfloat16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return BFloat16{static_cast<uint16_t>(u >> 16)};
}

RIPT_HD float to_float(Half v) {
  const uint32_t sign = static_cast<uint32_t>(v.bits & 0x8000u) << 16;
  uint32_t exp = (v.bits >> 10) & 0x1fu;
  uint32_t mant = v.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_to_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return bits_to_float(sign);
    // subnormal: normalise
    exp = 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    mant &= 0x3ffu;
    return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

RIPT_HD Half to_half(float f) {
  const uint32_t u = float_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return Half{static_cast<uint16_t>(sign | 0x7e00u)};  // nan
  if (abs >= 0x477ff000u) return Half{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow to inf
  if (abs < 0x38800000u) {  // subnormal or zero in half
    if (abs < 0x33000000u) return Half{sign};
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half_point = 1u << (shift - 1u);
    if (rem > half_point || (rem == half_point && (h & 1u))) ++h;
    return Half{static_cast<uint16_t>(sign | h)};
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return Half{static_cast<uint16_t>(sign | h)};
}

// load<T>(p) reads one element widened to acc_t<T>; store(p, v) narrows and writes it.
template <typename T>
RIPT_HD acc_t<T> load(const T* p) {
  return static_cast<acc_t<T>>(*p);
}
template <>
RIPT_HD float load<Half>(const Half* p) {
  return to_float(*p);
}
template <>
RIPT_HD float load<BFloat16>(const BFloat16* p) {
  return to_float(*p);
}

template <typename T>
RIPT_HD void store(T* p, acc_t<T> v) {
  *p = static_cast<T>(v);
}
template <>
RIPT_HD void store<Half>(Half* p, float v) {
  *p = to_half(v);
}
template <>
RIPT_HD void store<BFloat16>(BFloat16* p, float v) {
  *p = to_bfloat16(v);
}

}  // namespace ript
