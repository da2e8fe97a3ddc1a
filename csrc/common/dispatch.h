// Dtype dispatch: calls `fn(tag)` with a null `T*` whose pointee type T matches the runtime dtype, so a
// generic lambda can instantiate a kernel template per floating type.
#pragma once

#include <stdexcept>
#include <string>

#include "common/scalar.h"
#include "common/tensor_ref.h"

namespace ript {

template <typename Fn>
void dispatch_floating(DType dtype, const char* what, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: fn(static_cast<float*>(nullptr)); return;
    case DType::kFloat64: fn(static_cast<double*>(nullptr)); return;
    case DType::kFloat16: fn(static_cast<Half*>(nullptr)); return;
    case DType::kBFloat16: fn(static_cast<BFloat16*>(nullptr)); return;
    default: throw std::invalid_argument(std::string(what) + ": expected a floating dtype, got " + dtype_name(dtype));
  }
}

}  // namespace ript
