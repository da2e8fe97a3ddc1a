#include <pybind11/stl.h>

#include "bindings.h"
#include "ops/categorical_logprob.h"
#include "ops/categorical_ppo_loss.h"
#include "ops/continuous_logprob.h"
#include "ops/ppo_clip_loss.h"
#include "ops/rloo_advantage.h"

namespace py = pybind11;

namespace ript {

void bind_ops(py::module_& m) {
  py::enum_<Density>(m, "Density", "Closed-form density of a continuous action head")
      .value("gaussian", Density::kGaussian)
      .value("laplace", Density::kLaplace);

  auto cpu = m.def_submodule("cpu", "CPU kernels (multithreaded on the core's pool)");
  auto nogil = py::call_guard<py::gil_scoped_release>();
  cpu.def("rloo_advantage", &rloo_advantage_cpu, py::arg("rewards"), py::arg("out"), nogil);
  cpu.def("informative_groups", &informative_groups_cpu, py::arg("rewards"), py::arg("out"), nogil);
  cpu.def("categorical_logprob", &categorical_logprob_cpu, py::arg("logits"), py::arg("tokens"), py::arg("mask"),
          py::arg("temperature"), py::arg("logp"), py::arg("lse"), nogil);
  cpu.def("categorical_logprob_backward", &categorical_logprob_backward_cpu, py::arg("grad_logp"), py::arg("logits"),
          py::arg("tokens"), py::arg("mask"), py::arg("lse"), py::arg("temperature"), py::arg("grad_logits"), nogil);
  cpu.def("continuous_logprob", &continuous_logprob_cpu, py::arg("density"), py::arg("mean"), py::arg("log_scale"),
          py::arg("actions"), py::arg("mask"), py::arg("logp"), py::arg("grad_mean"), py::arg("grad_log_scale"), nogil);
  cpu.def("ppo_clip_loss", &ppo_clip_loss_cpu, py::arg("logp_new"), py::arg("logp_old"), py::arg("advantages"),
          py::arg("mask"), py::arg("clip_eps"), py::arg("clip_eps_high"), py::arg("loss"), py::arg("stats"),
          py::arg("grad"), nogil);
  cpu.def("categorical_ppo_loss", &categorical_ppo_loss_cpu, py::arg("logits"), py::arg("tokens"), py::arg("mask"),
          py::arg("logp_old"), py::arg("advantages"), py::arg("clip_eps"), py::arg("clip_eps_high"),
          py::arg("temperature"), py::arg("loss"), py::arg("stats"), py::arg("grad_logits"), nogil);

#ifdef RIPT_WITH_CUDA
  auto cuda = m.def_submodule("cuda", "CUDA kernels: every function takes the device index and a cudaStream_t");
  cuda.def("rloo_advantage", &rloo_advantage_cuda, py::arg("rewards"), py::arg("out"), py::arg("device"),
           py::arg("stream"), nogil);
  cuda.def("informative_groups", &informative_groups_cuda, py::arg("rewards"), py::arg("out"), py::arg("device"),
           py::arg("stream"), nogil);
  cuda.def("categorical_logprob", &categorical_logprob_cuda, py::arg("logits"), py::arg("tokens"), py::arg("mask"),
           py::arg("temperature"), py::arg("logp"), py::arg("lse"), py::arg("device"), py::arg("stream"), nogil);
  cuda.def("categorical_logprob_backward", &categorical_logprob_backward_cuda, py::arg("grad_logp"),
           py::arg("logits"), py::arg("tokens"), py::arg("mask"), py::arg("lse"), py::arg("temperature"),
           py::arg("grad_logits"), py::arg("device"), py::arg("stream"), nogil);
  cuda.def("continuous_logprob", &continuous_logprob_cuda, py::arg("density"), py::arg("mean"), py::arg("log_scale"),
           py::arg("actions"), py::arg("mask"), py::arg("logp"), py::arg("grad_mean"), py::arg("grad_log_scale"),
           py::arg("device"), py::arg("stream"), nogil);
  cuda.def("ppo_clip_loss", &ppo_clip_loss_cuda, py::arg("logp_new"), py::arg("logp_old"), py::arg("advantages"),
           py::arg("mask"), py::arg("clip_eps"), py::arg("clip_eps_high"), py::arg("loss"), py::arg("stats"),
           py::arg("grad"), py::arg("device"), py::arg("stream"), nogil);
  cuda.def("categorical_ppo_loss", &categorical_ppo_loss_cuda, py::arg("logits"), py::arg("tokens"), py::arg("mask"),
           py::arg("logp_old"), py::arg("advantages"), py::arg("clip_eps"), py::arg("clip_eps_high"),
           py::arg("temperature"), py::arg("loss"), py::arg("stats"), py::arg("grad_logits"), py::arg("device"),
           py::arg("stream"), nogil);
#endif
}

}  // namespace ript
