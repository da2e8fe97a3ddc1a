#include <pybind11/stl.h>

#include "bindings.h"
#include "common/tensor_ref.h"
#include "common/thread_pool.h"

#ifdef RIPT_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace py = pybind11;

namespace ript {

namespace {
int cuda_device_count() {
#ifdef RIPT_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error and report none
    return 0;
  }
  return n;
#else
  return 0;
#endif
}
}  // namespace

void bind_common(py::module_& m) {
  py::enum_<DType>(m, "DType")
      .value("float32", DType::kFloat32)
      .value("float64", DType::kFloat64)
      .value("float16", DType::kFloat16)
      .value("bfloat16", DType::kBFloat16)
      .value("int64", DType::kInt64)
      .value("int32", DType::kInt32)
      .value("bool", DType::kBool);

  py::class_<TensorRef>(m, "TensorRef", "A non-owning strided buffer view: address, dtype, sizes, strides (elements)")
      .def(py::init([](uintptr_t ptr, DType dtype, std::vector<int64_t> sizes, std::vector<int64_t> strides) {
             if (sizes.size() != strides.size()) throw std::invalid_argument("TensorRef: sizes and strides differ in length");
             return TensorRef{ptr, dtype, std::move(sizes), std::move(strides)};
           }),
           py::arg("ptr"), py::arg("dtype"), py::arg("sizes"), py::arg("strides"))
      .def_readonly("ptr", &TensorRef::ptr)
      .def_readonly("dtype", &TensorRef::dtype)
      .def_readonly("sizes", &TensorRef::sizes)
      .def_readonly("strides", &TensorRef::strides);

  m.def("num_threads", &num_threads, "Threads used by the core's pool (caller included)");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Resize the core's thread pool (n >= 1)");
#ifdef RIPT_WITH_CUDA
  m.attr("cuda_compiled") = true;
#else
  m.attr("cuda_compiled") = false;
#endif
  m.def("cuda_device_count", &cuda_device_count, "CUDA devices visible to the core (0 without a driver or GPU)");
}

}  // namespace ript
