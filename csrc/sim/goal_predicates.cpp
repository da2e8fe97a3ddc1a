#include "sim/goal_predicates.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ript::sim {

namespace {

bool in_set(const std::vector<int32_t>& sorted, int32_t g) { return std::binary_search(sorted.begin(), sorted.end(), g); }

bool any_contact(const GoalTerm& t, const mjData* d) {
  for (int i = 0; i < d->ncon; ++i) {
    const int g1 = d->contact[i].geom[0], g2 = d->contact[i].geom[1];
    if ((in_set(t.geoms_a, g1) && in_set(t.geoms_b, g2)) || (in_set(t.geoms_b, g1) && in_set(t.geoms_a, g2))) {
      return true;
    }
  }
  return false;
}

// r @ v for a row-major 3x3 r.
Vec3 rotate(const double* r, const Vec3& v) {
  Vec3 out{};
  for (int i = 0; i < 3; ++i) out[i] = r[3 * i] * v[0] + r[3 * i + 1] * v[1] + r[3 * i + 2] * v[2];
  return out;
}

bool in_site_box(const GoalTerm& t, const Vec3& p, const mjData* d) {
  const double* s = d->site_xpos + 3 * t.site;
  const Vec3 extent = rotate(d->site_xmat + 9 * t.site, t.size);
  for (int k = 0; k < 3; ++k) {
    const double half = std::fabs(extent[k]);
    const double lb = s[k] - half - (k == 2 ? t.margin : 0.0);
    if (!(p[k] > lb && p[k] < s[k] + half)) return false;
  }
  return true;
}

bool on_site_top(const GoalTerm& t, const Vec3& p, const mjData* d) {
  const double* s = d->site_xpos + 3 * t.site;
  const Vec3 delta = rotate(d->site_xmat + 9 * t.site, {p[0] - s[0], p[1] - s[1], p[2] - s[2]});
  const bool level = t.size[2] - t.margin < delta[2] && delta[2] < t.size[2] + t.height;
  return level && std::fabs(delta[0]) < t.size[0] && std::fabs(delta[1]) < t.size[1];
}

bool joints(const GoalTerm& t, const mjData* d) {
  for (int32_t adr : t.qpos) {
    const bool holds = compare(d->qpos[adr], t.compare, t.threshold);
    if (t.all && !holds) return false;
    if (!t.all && holds) return true;
  }
  return t.all;
}

void check_point(const Point& p, const mjModel* m, const std::string& who) {
  if (p.kind == PointKind::kBody && (p.id < 0 || p.id >= m->nbody)) throw std::invalid_argument(who + ": bad body id");
  if (p.kind == PointKind::kSite && (p.id < 0 || p.id >= m->nsite)) throw std::invalid_argument(who + ": bad site id");
  if (p.kind != PointKind::kBody && p.kind != PointKind::kSite && p.kind != PointKind::kConst) {
    throw std::invalid_argument(who + ": goal points must be body, site or const points");
  }
}

}  // namespace

void check_goal_term(const GoalTerm& t, const mjModel* m, int64_t index) {
  const std::string who = "goal term " + std::to_string(index);
  check_point(t.a, m, who);
  check_point(t.b, m, who);
  for (const auto* set : {&t.geoms_a, &t.geoms_b}) {
    if (!std::is_sorted(set->begin(), set->end())) throw std::invalid_argument(who + ": geom sets must be sorted");
    for (int32_t g : *set) {
      if (g < 0 || g >= m->ngeom) throw std::invalid_argument(who + ": bad geom id");
    }
  }
  if ((t.kind == GoalKind::kInSiteBox || t.kind == GoalKind::kOnSiteTop) && (t.site < 0 || t.site >= m->nsite)) {
    throw std::invalid_argument(who + ": bad site id");
  }
  for (int32_t adr : t.qpos) {
    if (adr < 0 || adr >= m->nq) throw std::invalid_argument(who + ": bad qpos address");
  }
  if (t.kind == GoalKind::kJoint && t.qpos.empty()) throw std::invalid_argument(who + ": a joint term needs joints");
}

bool eval_goal_term(const GoalTerm& t, const mjModel* m, const mjData* d) {
  const EpisodeValues none{};
  switch (t.kind) {
    case GoalKind::kContact: return any_contact(t, d);
    case GoalKind::kCompareZ: return compare(eval_point(t.a, m, d, none)[2], t.compare, eval_point(t.b, m, d, none)[2]);
    case GoalKind::kNearXY: {
      const Vec3 a = eval_point(t.a, m, d, none), b = eval_point(t.b, m, d, none);
      const double dx = a[0] - b[0], dy = a[1] - b[1];
      return std::sqrt(dx * dx + dy * dy) < t.threshold;
    }
    case GoalKind::kInSiteBox: return in_site_box(t, eval_point(t.a, m, d, none), d);
    case GoalKind::kOnSiteTop: return on_site_top(t, eval_point(t.a, m, d, none), d);
    case GoalKind::kJoint: return joints(t, d);
  }
  return false;
}

}  // namespace ript::sim
