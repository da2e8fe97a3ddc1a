// Small pybind11 helpers shared by the _C.sim bindings (MetaWorld's BatchSim and LIBERO's LiberoSim).
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/batch_sim.h"

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

// The batch size of a list of env configs; std::invalid_argument if it is empty.
template <typename Config>
pybind11::ssize_t checked_size(const std::vector<Config>& envs) {
  require(!envs.empty(), "envs: needs at least one env");
  return static_cast<pybind11::ssize_t>(envs.size());
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

// The numpy arrays a batch writes its per-env outputs into (allocated once, zeroed), and their raw view.
struct OutputArrays {
  OutputArrays(pybind11::ssize_t n, pybind11::ssize_t obs_dim, pybind11::ssize_t context_dim)
      : obs(zeros<double>({n, obs_dim})),
        reward(zeros<double>({n})),
        context(zeros<double>({n, context_dim})),
        terminated(zeros<bool>({n})),
        truncated(zeros<bool>({n})),
        success(zeros<bool>({n})),
        sim_error(zeros<bool>({n})) {}

  sim::Outputs outputs() {
    return sim::Outputs{obs.mutable_data(),     reward.mutable_data(),    terminated.mutable_data(),
                        truncated.mutable_data(), success.mutable_data(), sim_error.mutable_data(),
                        context.mutable_data()};
  }

  pybind11::array_t<double> obs, reward, context;
  pybind11::array_t<bool> terminated, truncated, success, sim_error;
};

}  // namespace ript::sim_bindings
