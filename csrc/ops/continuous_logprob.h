// Closed-form log densities of factorised continuous action heads (paper Sec. 4.3): a Gaussian for heads
// trained with MSE, a Laplace for heads trained with L1 (OpenVLA-OFT's scale head). With s = log_scale,
// sigma = b = exp(s), per action dimension:
//   Gaussian: log p = -(a - mu)^2 / (2 sigma^2) - s - log(2 pi) / 2,  d/dmu = (a - mu) / sigma^2,  d/ds = z^2 - 1
//   Laplace:  log p = -|a - mu| / b - s - log 2,  d/dmu = sign(a - mu) / b (0 at a == mu),  d/ds = |a - mu| / b - 1
// The op returns, per (b, t), w * sum_d log p; rows with w == 0 are never read. d/da = -d/dmu.
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

struct Gaussian {
  template <typename A>
  RIPT_HD static A logp(A x, A mu, A log_scale) {
    const A z = (x - mu) * std::exp(-log_scale);
    return A(-0.5) * z * z - log_scale - A(0.918938533204672741780329736406);
  }
  template <typename A>
  RIPT_HD static void grad(A x, A mu, A log_scale, A& d_mu, A& d_log_scale) {
    const A inv = std::exp(-log_scale);
    const A z = (x - mu) * inv;
    d_mu = z * inv;
    d_log_scale = z * z - A(1);
  }
};

struct Laplace {
  template <typename A>
  RIPT_HD static A logp(A x, A mu, A log_scale) {
    return -std::fabs(x - mu) * std::exp(-log_scale) - log_scale - A(0.693147180559945309417232121458);
  }
  template <typename A>
  RIPT_HD static void grad(A x, A mu, A log_scale, A& d_mu, A& d_log_scale) {
    const A inv = std::exp(-log_scale);
    const A diff = x - mu;
    d_mu = diff > 0 ? inv : (diff < 0 ? -inv : A(0));  // the subgradient 0 at a == mu
    d_log_scale = std::fabs(diff) * inv - A(1);
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
  RIPT_HD A weight(int64_t b, int64_t t) const { return mask ? mask(b, t) : A(1); }

  template <typename D>
  RIPT_HD A row_logp(int64_t b, int64_t t) const {
    const A w = weight(b, t);
    if (w == 0) return A(0);
    A sum = 0;
    for (int64_t d = 0; d < dims; ++d) {
      sum += D::logp(load(&actions(b, t, d)), load(&mean(b, t, d)), load(&log_scale(b, t, d)));
    }
    return w * sum;
  }

  // Writes g * w * d(sum_d log p)/d(mean, log_scale) for one row into grad_mean / grad_log_scale.
  template <typename D>
  RIPT_HD void row_grad(int64_t b, int64_t t, A g, const Strided3<T>& grad_mean, const Strided3<T>& grad_log_scale) const {
    const A c = g * weight(b, t);
    for (int64_t d = 0; d < dims; ++d) {
      A d_mu = 0, d_ls = 0;
      if (c != 0) D::grad(load(&actions(b, t, d)), load(&mean(b, t, d)), load(&log_scale(b, t, d)), d_mu, d_ls);
      store(&grad_mean(b, t, d), c * d_mu);
      store(&grad_log_scale(b, t, d), c * d_ls);
    }
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

// The argument plumbing both backends share. `be.forward(density, in, logp)` fills logp (B, T);
// `be.backward(density, in, grad_logp, grad_mean, grad_log_scale)` fills the two (B, T, D) gradients.
template <typename Backend>
void continuous_logprob_impl(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             const Backend& be) {
  dispatch_density(density, mean.dtype, [&](auto tag, auto dens) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const ContinuousIn<T> in = continuous_in<T>(mean, log_scale, actions, mask);
    be.forward(dens, in, strided2<acc_t<T>>(logp, "logp", in.batch, in.steps));
  });
}

template <typename Backend>
void continuous_logprob_backward_impl(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                      const TensorRef& log_scale, const TensorRef& actions,
                                      const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                      const TensorRef& grad_log_scale, const Backend& be) {
  dispatch_density(density, mean.dtype, [&](auto tag, auto dens) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const ContinuousIn<T> in = continuous_in<T>(mean, log_scale, actions, mask);
    be.backward(dens, in, strided2<const acc_t<T>>(grad_logp, "grad_logp", in.batch, in.steps),
                strided3<T>(grad_mean, "grad_mean", in.batch, in.steps, in.dims),
                strided3<T>(grad_log_scale, "grad_log_scale", in.batch, in.steps, in.dims));
  });
}

// logp (B, T) output in the accumulation dtype.
void continuous_logprob_cpu(Density density, const TensorRef& mean, const TensorRef& log_scale,
                            const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp);
// grad_logp (B, T) in the accumulation dtype; grad_mean, grad_log_scale (B, T, D) outputs in the input dtype.
void continuous_logprob_backward_cpu(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                     const TensorRef& log_scale, const TensorRef& actions,
                                     const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                     const TensorRef& grad_log_scale);

#ifdef RIPT_WITH_CUDA
void continuous_logprob_cuda(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             int device, uintptr_t stream);
void continuous_logprob_backward_cuda(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                      const TensorRef& log_scale, const TensorRef& actions,
                                      const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                      const TensorRef& grad_log_scale, int device, uintptr_t stream);
#endif

}  // namespace ript
