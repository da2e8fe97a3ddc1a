// A non-owning view of a strided buffer passed in from Python: a raw address, a dtype code, sizes and strides
// (in elements). This is the whole ABI between the torch side and the core: no torch headers, so one build
// works with every torch version, and the Python layer keeps the tensors alive for the call's duration.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ript {

// Must match ript_fast/ops/_buffers.py.
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3, kInt64 = 4, kInt32 = 5, kBool = 6 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kBool: return "bool";
  }
  return "unknown";
}

struct TensorRef {
  uintptr_t ptr = 0;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;

  int64_t dim() const { return static_cast<int64_t>(sizes.size()); }
  int64_t size(int64_t d) const { return sizes.at(static_cast<size_t>(d)); }
  int64_t stride(int64_t d) const { return strides.at(static_cast<size_t>(d)); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : sizes) n *= s;
    return n;
  }
  template <typename T>
  T* data() const { return reinterpret_cast<T*>(ptr); }
};

// Checks made again on the C++ side (the Python layer validates first, with friendlier messages): the core
// must never read out of bounds even when called directly.
inline void check_ref(const TensorRef& t, const char* name, int64_t ndim) {
  if (t.dim() != ndim || static_cast<int64_t>(t.strides.size()) != ndim) {
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                std::to_string(t.dim()));
  }
  if (t.ptr == 0 && t.numel() > 0) throw std::invalid_argument(std::string(name) + ": null data pointer");
}

inline void check_dtype(const TensorRef& t, const char* name, std::initializer_list<DType> allowed) {
  for (DType d : allowed) {
    if (t.dtype == d) return;
  }
  throw std::invalid_argument(std::string(name) + ": unsupported dtype " + dtype_name(t.dtype));
}

}  // namespace ript
