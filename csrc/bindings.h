// Each area of the core registers its functions on the one `_C` module.
#pragma once

#include <pybind11/pybind11.h>

namespace ript {
void bind_common(pybind11::module_& m);  // common/bindings.cpp: TensorRef, thread pool, CUDA availability
void bind_ops(pybind11::module_& m);     // ops/bindings.cpp: the fused RL kernels
void bind_sim(pybind11::module_& m);     // sim/bindings.cpp: the batched MuJoCo stepper
void bind_libero(pybind11::module_& sim);  // sim/libero_bindings.cpp: LIBERO's batch (OSC_POSE, goal predicates)
void bind_render(pybind11::module_& m);  // render/bindings.cpp: the batched offscreen renderer (EGL)
}  // namespace ript
