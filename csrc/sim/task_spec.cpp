#include "sim/task_spec.h"

#include <algorithm>
#include <cmath>

namespace ript::sim {

namespace {

Vec3 row3(const mjtNum* base, int32_t id) { return {base[3 * id], base[3 * id + 1], base[3 * id + 2]}; }

Vec3 raw_point(const Point& p, const mjData* d, const EpisodeValues& ep) {
  switch (p.kind) {
    case PointKind::kConst: return {0.0, 0.0, 0.0};
    case PointKind::kBody: return row3(d->xpos, p.id);
    case PointKind::kSite: return row3(d->site_xpos, p.id);
    case PointKind::kGeom: return row3(d->geom_xpos, p.id);
    case PointKind::kTcp: {
      const Vec3 r = row3(d->site_xpos, p.id), l = row3(d->site_xpos, p.aux);
      return {(r[0] + l[0]) / 2.0, (r[1] + l[1]) / 2.0, (r[2] + l[2]) / 2.0};
    }
    case PointKind::kJointArc: {
      // The arc vector is scaled first and then added, as MetaWorld's dial-turn does.
      const double q = d->qpos[p.aux];
      const Vec3 c = row3(d->xpos, p.id);
      return {c[0] + std::sin(q) * p.radius, c[1] + -std::cos(q) * p.radius, c[2] + 0.0 * p.radius};
    }
    case PointKind::kQpos: return {d->qpos[p.id], 0.0, 0.0};
    case PointKind::kObs: return {ep.obs[p.id], ep.obs[p.id + 1], ep.obs[p.id + 2]};
    case PointKind::kGoal: return ep.goal;
    case PointKind::kParam: return {(*ep.params)[p.id], (*ep.params)[p.id + 1], (*ep.params)[p.id + 2]};
  }
  return {0.0, 0.0, 0.0};
}

bool compare(double v, Compare c, double threshold) {
  switch (c) {
    case Compare::kLE: return v <= threshold;
    case Compare::kLT: return v < threshold;
    case Compare::kGE: return v >= threshold;
    case Compare::kGT: return v > threshold;
  }
  return false;
}

// Summed constraint force of the contacts between two geoms. A contact left out of the constraints has
// efc_address -1, which MetaWorld's Python indexes as efc_force[-1] (the last row); we read the same row so
// that the success flag agrees with MetaWorld's own evaluate_state bit for bit.
double contact_force(const mjData* d, int32_t g1, int32_t g2) {
  double sum = 0.0;
  for (int i = 0; i < d->ncon; ++i) {
    const mjContact& c = d->contact[i];
    const bool pair = (c.geom[0] == g1 || c.geom[1] == g1) && (c.geom[0] == g2 || c.geom[1] == g2);
    if (!pair) continue;
    const int row = c.efc_address >= 0 ? c.efc_address : d->nefc + c.efc_address;
    if (row >= 0 && row < d->nefc) sum += d->efc_force[row];
  }
  return sum;
}

}  // namespace

Vec3 eval_point(const Point& p, const mjModel* m, const mjData* d, const EpisodeValues& ep) {
  (void)m;
  const Vec3 raw = raw_point(p, d, ep);
  return {p.mask[0] * raw[0] + p.offset[0], p.mask[1] * raw[1] + p.offset[1], p.mask[2] * raw[2] + p.offset[2]};
}

Vec4 scipy_quat_from_matrix(const double* r) {
  const double m00 = r[0], m01 = r[1], m02 = r[2];
  const double m10 = r[3], m11 = r[4], m12 = r[5];
  const double m20 = r[6], m21 = r[7], m22 = r[8];
  const double trace = m00 + m11 + m22;
  // argmax over (m00, m11, m22, trace), first maximum wins, as numpy's argmax.
  const double decision[4] = {m00, m11, m22, trace};
  int choice = 0;
  for (int k = 1; k < 4; ++k) {
    if (decision[k] > decision[choice]) choice = k;
  }
  Vec4 q;
  switch (choice) {
    case 0: q = {1 - trace + 2 * m00, m10 + m01, m20 + m02, m21 - m12}; break;
    case 1: q = {m10 + m01, 1 - trace + 2 * m11, m21 + m12, m02 - m20}; break;
    case 2: q = {m20 + m02, m21 + m12, 1 - trace + 2 * m22, m10 - m01}; break;
    default: q = {m21 - m12, m02 - m20, m10 - m01, 1 + trace}; break;
  }
  const double norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (double& v : q) v /= norm;
  return q;
}

Vec4 eval_quat(const Quat& q, const mjData* d) {
  switch (q.kind) {
    case QuatKind::kConst: return q.value;
    case QuatKind::kBodyXquat: {
      const mjtNum* x = d->xquat + 4 * q.id;
      return {x[0], x[1], x[2], x[3]};
    }
    case QuatKind::kBodyXmat: return scipy_quat_from_matrix(d->xmat + 9 * q.id);
    case QuatKind::kGeomXmat: return scipy_quat_from_matrix(d->geom_xmat + 9 * q.id);
    case QuatKind::kSiteXmat: return scipy_quat_from_matrix(d->site_xmat + 9 * q.id);
  }
  return q.value;
}

bool eval_term(const Term& t, const mjModel* m, const mjData* d, const EpisodeValues& ep) {
  if (t.kind == TermKind::kContact) {
    return contact_force(d, t.geoms[0], t.geoms[2]) > 0.0 && contact_force(d, t.geoms[1], t.geoms[2]) > 0.0;
  }
  const Vec3 a = eval_point(t.a, m, d, ep), b = eval_point(t.b, m, d, ep);
  double v = 0.0;
  if (t.reduce == Reduce::kNorm) {
    for (int k = 0; k < 3; ++k) {
      const double c = (a[k] - b[k]) * t.weight[k];
      v += c * c;
    }
    v = std::sqrt(v);
  } else {
    for (int k = 0; k < 3; ++k) v += (a[k] - b[k]) * t.weight[k];
  }
  return compare(v, t.compare, t.threshold);
}

void gather_current(const ObsSpec& spec, const mjModel* m, const mjData* d, const EpisodeValues& ep, double* cur) {
  const Vec3 hand = row3(d->xpos, spec.hand_body);
  std::copy(hand.begin(), hand.end(), cur);
  const Vec3 f0 = row3(d->xpos, spec.finger_bodies[0]), f1 = row3(d->xpos, spec.finger_bodies[1]);
  const double dx = f0[0] - f1[0], dy = f0[1] - f1[1], dz = f0[2] - f1[2];
  cur[3] = std::clamp(std::sqrt(dx * dx + dy * dy + dz * dz) / spec.finger_span, 0.0, 1.0);
  double* slot = cur + 4;
  std::fill(slot, slot + 7 * spec.object_slots, 0.0);
  for (const ObjectSlot& obj : spec.objects) {
    const Vec3 p = eval_point(obj.pos, m, d, ep);
    const Vec4 q = eval_quat(obj.quat, d);
    std::copy(p.begin(), p.end(), slot);
    std::copy(q.begin(), q.end(), slot + 3);
    slot += 7;
  }
}

}  // namespace ript::sim
