// Plain strided views (a pointer and strides in elements) that kernels on both the host and the device index
// by, built from a TensorRef once its rank and dtype were checked. A null pointer means "absent" (an optional
// argument that was not given), which kernels test with `if (view)`.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/scalar.h"
#include "common/tensor_ref.h"

namespace ript {

template <typename T>
struct Strided1 {
  T* p = nullptr;
  int64_t s0 = 0;
  RIPT_HD T& operator[](int64_t i) const { return p[i * s0]; }
  RIPT_HD explicit operator bool() const { return p != nullptr; }
};

template <typename T>
struct Strided2 {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  RIPT_HD T& operator()(int64_t i, int64_t j) const { return p[i * s0 + j * s1]; }
  RIPT_HD explicit operator bool() const { return p != nullptr; }
};

template <typename T>
struct Strided3 {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;
  RIPT_HD T& operator()(int64_t i, int64_t j, int64_t k) const { return p[i * s0 + j * s1 + k * s2]; }
  RIPT_HD explicit operator bool() const { return p != nullptr; }
};

// Token ids of either integer width, read as int64.
struct IndexView2 {
  const void* p = nullptr;
  bool is32 = false;
  int64_t s0 = 0, s1 = 0;
  RIPT_HD int64_t operator()(int64_t i, int64_t j) const {
    const int64_t off = i * s0 + j * s1;
    return is32 ? static_cast<int64_t>(static_cast<const int32_t*>(p)[off]) : static_cast<const int64_t*>(p)[off];
  }
};

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<Half> {
  static constexpr DType value = DType::kFloat16;
};
template <>
struct DTypeOf<BFloat16> {
  static constexpr DType value = DType::kBFloat16;
};

// Checks that `t` holds elements of type T (const or not) before viewing it.
template <typename T>
void expect_dtype(const TensorRef& t, const char* name) {
  using U = std::remove_const_t<T>;
  if (t.dtype != DTypeOf<U>::value) {
    throw std::invalid_argument(std::string(name) + ": expected dtype " + dtype_name(DTypeOf<U>::value) + ", got " +
                                dtype_name(t.dtype));
  }
}

// Checks the exact sizes of `t` (rank included).
inline void expect_sizes(const TensorRef& t, const char* name, std::initializer_list<int64_t> sizes) {
  check_ref(t, name, static_cast<int64_t>(sizes.size()));
  int64_t d = 0;
  for (int64_t s : sizes) {
    if (t.size(d) != s) {
      throw std::invalid_argument(std::string(name) + ": size " + std::to_string(t.size(d)) + " at dimension " +
                                  std::to_string(d) + ", expected " + std::to_string(s));
    }
    ++d;
  }
}

template <typename T>
Strided1<T> strided1(const TensorRef& t, const char* name, int64_t n) {
  expect_sizes(t, name, {n});
  expect_dtype<T>(t, name);
  return {t.data<std::remove_const_t<T>>(), t.stride(0)};
}

template <typename T>
Strided2<T> strided2(const TensorRef& t, const char* name, int64_t n0, int64_t n1) {
  expect_sizes(t, name, {n0, n1});
  expect_dtype<T>(t, name);
  return {t.data<std::remove_const_t<T>>(), t.stride(0), t.stride(1)};
}

template <typename T>
Strided3<T> strided3(const TensorRef& t, const char* name, int64_t n0, int64_t n1, int64_t n2) {
  expect_sizes(t, name, {n0, n1, n2});
  expect_dtype<T>(t, name);
  return {t.data<std::remove_const_t<T>>(), t.stride(0), t.stride(1), t.stride(2)};
}

template <typename T>
Strided2<T> optional2(const std::optional<TensorRef>& t, const char* name, int64_t n0, int64_t n1) {
  return t ? strided2<T>(*t, name, n0, n1) : Strided2<T>{};
}

inline IndexView2 index2(const TensorRef& t, const char* name, int64_t n0, int64_t n1) {
  expect_sizes(t, name, {n0, n1});
  check_dtype(t, name, {DType::kInt64, DType::kInt32});
  return {reinterpret_cast<const void*>(t.ptr), t.dtype == DType::kInt32, t.stride(0), t.stride(1)};
}

}  // namespace ript
