#include "common/cuda_check.h"
#include "ops/categorical_logprob.h"
#include "ops/categorical_rows.cuh"

namespace ript {

void categorical_logprob_cuda(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                              double temperature, const TensorRef& logp, const TensorRef& lse, int device,
                              uintptr_t stream) {
  categorical_logprob_impl(logits, tokens, mask, temperature, logp, lse, CudaRows{use_device(device, stream)});
}

void categorical_logprob_backward_cuda(const TensorRef& grad_logp, const TensorRef& logits, const TensorRef& tokens,
                                       const std::optional<TensorRef>& mask, const TensorRef& lse, double temperature,
                                       const TensorRef& grad_logits, int device, uintptr_t stream) {
  categorical_logprob_backward_impl(grad_logp, logits, tokens, mask, lse, temperature, grad_logits,
                                    CudaRows{use_device(device, stream)});
}

}  // namespace ript
