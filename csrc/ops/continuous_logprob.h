// Closed-form log densities of factorised continuous action heads (paper Sec. 4.3): a Gaussian for heads
// trained with MSE, a Laplace for heads trained with L1 (OpenVLA-OFT's scale head). With s = log_scale,
// sigma = b = exp(s), per action dimension:
//   Gaussian: log p = -(a - mu)^2 / (2 sigma^2) - s - log(2 pi) / 2,  d/dmu = (a - mu) / sigma^2,  d/ds = z^2 - 1
//   Laplace:  log p = -|a - mu| / b - s - log 2,  d/dmu = sign(a - mu) / b (0 at a == mu),  d/ds = |a - mu| / b - 1
// The op returns, per (b, t), w * sum_d log p; rows with w == 0 are never read. The gradients share the
// forward's one exp per element, so they are computed with it (w included) when asked for: (B, T, D) is small
// for continuous heads, and the backward is then a broadcast multiply. d/da = -d/dmu.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "common/dispatch.h"
#include "common/scalar.h"
#include "common/strided.h"
#include "common/tensor_ref.h"

namespace ript {

enum class Density : int { kGaussian = 0, kLaplace = 1 };

// eval(x, mu, s, d_mu, d_s) returns log p and writes its two partial derivatives.
struct Gaussian {
  template <typename A>
  RIPT_HD static A eval(A x, A mu, A log_scale, A& d_mu, A& d_log_scale) {
    const A inv = std::exp(-log_scale);
    const A z = (x - mu) * inv;
    d_mu = z * inv;
    d_log_scale = z * z - A(1);
    return A(-0.5) * z * z - log_scale - A(0.918938533204672741780329736406);
  }
};

struct Laplace {
  template <typename A>
  RIPT_HD static A eval(A x, A mu, A log_scale, A& d_mu, A& d_log_scale) {
    const A inv = std::exp(-log_scale);
    const A diff = x - mu;
    const A dist = std::fabs(diff) * inv;
    d_mu = diff > 0 ? inv : (diff < 0 ? -inv : A(0));  // the subgradient 0 at a == mu
    d_log_scale = dist - A(1);
    return -dist - log_scale - A(0.693147180559945309417232121458);
  }
};

// mean, log_scale, actions (B, T, D) of one dtype, any strides (log_scale typically broadcast, stride 0);
// an optional (B, T) weight mask in the accumulation dtype.
template <typename T>
struct ContinuousIn {
  using A = acc_t<T>;
  Strided3<const T> mean, log_scale, actions;
  Strided2<const A> mask;
  int64_t batch = 0, steps = 0, dims = 0;

  RIPT_HD int64_t rows() const { return batch * steps; }

  // w * sum_d log p of row (b, t); when grad_mean is given, also w * d/dmean and w * d/dlog_scale per element
  // (zeros for a masked row, which is not read).
  template <typename D>
  RIPT_HD A row(int64_t b, int64_t t, const Strided3<T>& grad_mean, const Strided3<T>& grad_log_scale) const {
    const A w = mask ? mask(b, t) : A(1);
    A sum = 0;
    for (int64_t d = 0; d < dims; ++d) {
      A d_mu = 0, d_ls = 0;
      if (w != 0) sum += D::eval(load(&actions(b, t, d)), load(&mean(b, t, d)), load(&log_scale(b, t, d)), d_mu, d_ls);
      if (grad_mean) {
        store(&grad_mean(b, t, d), w * d_mu);
        store(&grad_log_scale(b, t, d), w * d_ls);
      }
    }
    return w == 0 ? A(0) : w * sum;
  }
};

template <typename T>
ContinuousIn<T> continuous_in(const TensorRef& mean, const TensorRef& log_scale, const TensorRef& actions,
                              const std::optional<TensorRef>& mask) {
  check_ref(mean, "mean", 3);
  ContinuousIn<T> in;
  in.batch = mean.size(0);
  in.steps = mean.size(1);
  in.dims = mean.size(2);
  in.mean = strided3<const T>(mean, "mean", in.batch, in.steps, in.dims);
  in.log_scale = strided3<const T>(log_scale, "log_scale", in.batch, in.steps, in.dims);
  in.actions = strided3<const T>(actions, "actions", in.batch, in.steps, in.dims);
  in.mask = optional2<const acc_t<T>>(mask, "mask", in.batch, in.steps);
  return in;
}

// Calls fn(T*, D{}) for the runtime dtype of `mean` and the density.
template <typename Fn>
void dispatch_density(Density density, DType dtype, Fn&& fn) {
  dispatch_floating(dtype, "mean", [&](auto tag) {
    switch (density) {
      case Density::kGaussian: fn(tag, Gaussian{}); return;
      case Density::kLaplace: fn(tag, Laplace{}); return;
    }
    throw std::invalid_argument("density: unknown");
  });
}

// The argument plumbing both backends share: `be.run(density, in, logp, grad_mean, grad_log_scale)` fills
// logp (B, T) and, when present, the two (B, T, D) gradients.
template <typename Backend>
void continuous_logprob_impl(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             const std::optional<TensorRef>& grad_mean, const std::optional<TensorRef>& grad_log_scale,
                             const Backend& be) {
  if (grad_mean.has_value() != grad_log_scale.has_value()) {
    throw std::invalid_argument("grad_mean, grad_log_scale: give both or neither");
  }
  dispatch_density(density, mean.dtype, [&](auto tag, auto dens) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const ContinuousIn<T> in = continuous_in<T>(mean, log_scale, actions, mask);
    Strided3<T> gm, gs;
    if (grad_mean) {
      gm = strided3<T>(*grad_mean, "grad_mean", in.batch, in.steps, in.dims);
      gs = strided3<T>(*grad_log_scale, "grad_log_scale", in.batch, in.steps, in.dims);
    }
    be.run(dens, in, strided2<acc_t<T>>(logp, "logp", in.batch, in.steps), gm, gs);
  });
}

// logp (B, T) output in the accumulation dtype; grad_mean, grad_log_scale (B, T, D) in the input dtype, both
// or neither: the weighted derivatives of logp[b, t] with respect to each element.
void continuous_logprob_cpu(Density density, const TensorRef& mean, const TensorRef& log_scale,
                            const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                            const std::optional<TensorRef>& grad_mean, const std::optional<TensorRef>& grad_log_scale);

#ifdef RIPT_WITH_CUDA
void continuous_logprob_cuda(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             const std::optional<TensorRef>& grad_mean, const std::optional<TensorRef>& grad_log_scale,
                             int device, uintptr_t stream);
#endif

}  // namespace ript
