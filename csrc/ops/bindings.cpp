#include <pybind11/stl.h>

#include "bindings.h"
#include "ops/rloo_advantage.h"

namespace py = pybind11;

namespace ript {

void bind_ops(py::module_& m) {
  auto cpu = m.def_submodule("cpu", "CPU kernels (multithreaded on the core's pool)");
  auto nogil = py::call_guard<py::gil_scoped_release>();
  cpu.def("rloo_advantage", &rloo_advantage_cpu, py::arg("rewards"), py::arg("out"), nogil);
  cpu.def("informative_groups", &informative_groups_cpu, py::arg("rewards"), py::arg("out"), nogil);

#ifdef RIPT_WITH_CUDA
  auto cuda = m.def_submodule("cuda", "CUDA kernels: every function takes the device index and a cudaStream_t");
  cuda.def("rloo_advantage", &rloo_advantage_cuda, py::arg("rewards"), py::arg("out"), py::arg("device"),
           py::arg("stream"), nogil);
  cuda.def("informative_groups", &informative_groups_cuda, py::arg("rewards"), py::arg("out"), py::arg("device"),
           py::arg("stream"), nogil);
#endif
}

}  // namespace ript
