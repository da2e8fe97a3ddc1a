#include "ops/categorical_logprob.h"

#include "ops/categorical_rows_cpu.h"

namespace ript {

void categorical_logprob_cpu(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                             double temperature, const TensorRef& logp, const TensorRef& lse) {
  categorical_logprob_impl(logits, tokens, mask, temperature, logp, lse, CpuRows{});
}

void categorical_logprob_backward_cpu(const TensorRef& grad_logp, const TensorRef& logits, const TensorRef& tokens,
                                      const std::optional<TensorRef>& mask, const TensorRef& lse, double temperature,
                                      const TensorRef& grad_logits) {
  categorical_logprob_backward_impl(grad_logp, logits, tokens, mask, lse, temperature, grad_logits, CpuRows{});
}

}  // namespace ript
