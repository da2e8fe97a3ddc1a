#include "sim/context_layout.h"

#include <cmath>

namespace ript::sim {

ContextLayout ContextLayout::of(const mjModel* m, int64_t task_id, int64_t nparam, int64_t cur_dim, int64_t nrand) {
  ContextLayout l;
  l.task_id = task_id;
  l.nstate = mj_stateSize(m, kContextStateSpec);
  l.nbody = m->nbody;
  l.nsite = m->nsite;
  l.nparam = nparam;
  l.cur_dim = cur_dim;
  l.nrand = nrand;
  return l;
}

void ContextLayout::write_header(double* row) const {
  const int64_t values[kHeader] = {kVersion, task_id, length(), nstate, nbody, nsite, nparam, cur_dim, nrand, 0};
  for (int64_t k = 0; k < kHeader; ++k) row[k] = static_cast<double>(values[k]);
}

std::string ContextLayout::mismatch(const double* row, int64_t width) const {
  if (width < kHeader) return "is shorter than the context header (" + std::to_string(kHeader) + " values)";
  if (row[0] != static_cast<double>(kVersion)) {
    return "is not a context vector (layout version " + std::to_string(row[0]) + ", expected " +
           std::to_string(kVersion) + ")";
  }
  if (row[1] != static_cast<double>(task_id)) {
    return "belongs to task id " + std::to_string(static_cast<int64_t>(row[1])) + " but this env runs task id " +
           std::to_string(task_id);
  }
  const char* names[] = {"length", "nstate", "nbody", "nsite", "nparam", "cur_dim", "nrand"};
  const int64_t expected[] = {length(), nstate, nbody, nsite, nparam, cur_dim, nrand};
  for (int k = 0; k < 7; ++k) {
    if (row[2 + k] != static_cast<double>(expected[k])) {
      return std::string("has ") + names[k] + " " + std::to_string(row[2 + k]) + " but this env needs " +
             std::to_string(expected[k]);
    }
  }
  if (width < length()) return "is cut short: " + std::to_string(width) + " values, needs " + std::to_string(length());
  for (int64_t k = kHeader; k < length(); ++k) {
    if (!std::isfinite(row[k])) return "holds a non-finite value at position " + std::to_string(k);
  }
  return "";
}

}  // namespace ript::sim
