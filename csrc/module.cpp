#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "ript_fast core: fused RL kernels (CPU/CUDA) and a batched MuJoCo stepper; takes raw buffers only";
  ript::bind_common(m);
  ript::bind_ops(m);
  ript::bind_sim(m);
  ript::bind_render(m);
}
