// Small pybind11 helpers shared by the _C.sim bindings (MetaWorld's BatchSim and LIBERO's LiberoSim).
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace ript::sim_bindings {

template <typename T>
pybind11::array_t<T> zeros(std::vector<pybind11::ssize_t> shape) {
  pybind11::array_t<T> a(shape);
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), T{});
  return a;
}

inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline bool c_contiguous(const pybind11::array& a) { return (a.flags() & pybind11::array::c_style) != 0; }

// Checks an (n, width) float32/float64 C-contiguous action array and an (n,) bool mask; true if float32.
inline bool check_step_args(const pybind11::array& actions, const pybind11::array& active, int64_t n, int width) {
  const bool f32 = actions.dtype().is(pybind11::dtype::of<float>());
  require(f32 || actions.dtype().is(pybind11::dtype::of<double>()), "actions: dtype must be float32 or float64");
  require(actions.ndim() == 2 && actions.shape(0) == n && actions.shape(1) == width && c_contiguous(actions),
          "actions: must be a C-contiguous (" + std::to_string(n) + ", " + std::to_string(width) + ") array");
  require(active.dtype().is(pybind11::dtype::of<bool>()) && active.ndim() == 1 && active.shape(0) == n &&
              c_contiguous(active),
          "active: must be a C-contiguous (" + std::to_string(n) + ",) bool array");
  return f32;
}

}  // namespace ript::sim_bindings
