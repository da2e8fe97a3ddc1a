// Dense linear algebra on small row-major matrices (n <= 7): what the OSC controller needs per substep, with
// no allocation. Symmetric positive definite inverses go through Cholesky; a matrix that is not positive
// definite (a singular Jacobian) falls back to a pseudo-inverse from a Jacobi eigen-decomposition, with
// numpy.linalg.pinv's cutoff (rcond 1e-15 relative to the largest magnitude), as robosuite's pinv does.
#pragma once

#include <algorithm>
#include <cmath>

namespace ript::sim::linalg {

// c (r x k) = a (r x n) * b (n x k)
inline void matmul(const double* a, const double* b, double* c, int r, int n, int k) {
  for (int i = 0; i < r; ++i) {
    for (int j = 0; j < k; ++j) {
      double s = 0.0;
      for (int t = 0; t < n; ++t) s += a[i * n + t] * b[t * k + j];
      c[i * k + j] = s;
    }
  }
}

// c (r x k) = a (r x n) * b^T, b being (k x n)
inline void matmul_bt(const double* a, const double* b, double* c, int r, int n, int k) {
  for (int i = 0; i < r; ++i) {
    for (int j = 0; j < k; ++j) {
      double s = 0.0;
      for (int t = 0; t < n; ++t) s += a[i * n + t] * b[j * n + t];
      c[i * k + j] = s;
    }
  }
}

// y (k) = a^T x, a being (n x k)
inline void matvec_t(const double* a, const double* x, double* y, int n, int k) {
  for (int j = 0; j < k; ++j) {
    double s = 0.0;
    for (int t = 0; t < n; ++t) s += a[t * k + j] * x[t];
    y[j] = s;
  }
}

// y (r) = a x, a being (r x n)
inline void matvec(const double* a, const double* x, double* y, int r, int n) {
  for (int i = 0; i < r; ++i) {
    double s = 0.0;
    for (int t = 0; t < n; ++t) s += a[i * n + t] * x[t];
    y[i] = s;
  }
}

// inv = a^-1 for a symmetric positive definite (n <= 7). Returns false (inv untouched) if a is not.
inline bool spd_inverse(const double* a, double* inv, int n) {
  double l[49] = {0.0};
  for (int j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int t = 0; t < j; ++t) d -= l[j * n + t] * l[j * n + t];
    if (!(d > 0.0)) return false;
    l[j * n + j] = std::sqrt(d);
    for (int i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int t = 0; t < j; ++t) s -= l[i * n + t] * l[j * n + t];
      l[i * n + j] = s / l[j * n + j];
    }
  }
  // Solve L L^T X = I column by column.
  for (int c = 0; c < n; ++c) {
    double y[7];
    for (int i = 0; i < n; ++i) {
      double s = (i == c) ? 1.0 : 0.0;
      for (int t = 0; t < i; ++t) s -= l[i * n + t] * y[t];
      y[i] = s / l[i * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {
      double s = y[i];
      for (int t = i + 1; t < n; ++t) s -= l[t * n + i] * inv[t * n + c];
      inv[i * n + c] = s / l[i * n + i];
    }
  }
  return true;
}

// Pseudo-inverse of a symmetric matrix (n <= 7) by cyclic Jacobi rotations.
inline void symmetric_pinv(const double* a, double* inv, int n) {
  double w[49], v[49] = {0.0};
  std::copy(a, a + n * n, w);
  for (int i = 0; i < n; ++i) v[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 64; ++sweep) {
    double off = 0.0;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) off += w[p * n + q] * w[p * n + q];
    }
    if (off < 1e-300) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const double apq = w[p * n + q];
        if (apq == 0.0) continue;
        const double theta = (w[q * n + q] - w[p * n + p]) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // W <- W G (columns p, q)
          const double wkp = w[k * n + p], wkq = w[k * n + q];
          w[k * n + p] = c * wkp - s * wkq;
          w[k * n + q] = s * wkp + c * wkq;
        }
        for (int k = 0; k < n; ++k) {  // W <- G^T W (rows p, q)
          const double wpk = w[p * n + k], wqk = w[q * n + k];
          w[p * n + k] = c * wpk - s * wqk;
          w[q * n + k] = s * wpk + c * wqk;
        }
        for (int k = 0; k < n; ++k) {  // V <- V G
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  double largest = 0.0;
  for (int i = 0; i < n; ++i) largest = std::max(largest, std::fabs(w[i * n + i]));
  const double cutoff = 1e-15 * largest;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      double s = 0.0;
      for (int k = 0; k < n; ++k) {
        const double e = w[k * n + k];
        if (std::fabs(e) > cutoff) s += v[i * n + k] * v[j * n + k] / e;
      }
      inv[i * n + j] = s;
    }
  }
}

// robosuite's pinv of an operational-space inverse inertia: exact inverse when positive definite.
inline void sym_inverse(const double* a, double* inv, int n) {
  if (!spd_inverse(a, inv, n)) symmetric_pinv(a, inv, n);
}

}  // namespace ript::sim::linalg
