// LIBERO's goal predicates (BDDL `:goal` atoms: On, In, Open, Close, TurnOn, TurnOff, Up) as generic terms
// over MuJoCo state, with no object or task names: ript_fast/envs/libero/goals.py reads each task's goal and
// LIBERO's object classes and compiles every atom into a conjunction of these terms.
//
//   kContact:    any current contact between a geom of `geoms_a` and one of `geoms_b` (robosuite's check_contact)
//   kCompareZ:   a.z <compare> b.z (a point of kind const gives a fixed height: LIBERO's Up is z >= 1.0)
//   kNearXY:     |a.xy - b.xy| < threshold (object-on-object: within 3 cm horizontally)
//   kInSiteBox:  a strictly inside the site's box: |R size| half extents around the site, the floor lowered by
//                `margin` (LIBERO's SiteObject.in_box; R is the site's rotation)
//   kOnSiteTop:  with delta = R (a - site): size.z - margin < delta.z < size.z + height and |delta.xy| < size.xy
//                componentwise (LIBERO's SiteObject.under)
//   kJoint:      qpos[j] <compare> threshold for all (Close, TurnOff) or any (Open, TurnOn) of the joints
// The goal holds when every term holds. Terms read mjData as the last mj_step left it (positions and contacts
// of the last substep's forward pass), which is exactly what LIBERO's check_success reads after env.step.
#pragma once

#include <mujoco/mujoco.h>

#include <cstdint>
#include <vector>

#include "sim/task_spec.h"

namespace ript::sim {

enum class GoalKind : int32_t { kContact = 0, kCompareZ = 1, kNearXY = 2, kInSiteBox = 3, kOnSiteTop = 4, kJoint = 5 };

struct GoalTerm {
  GoalKind kind = GoalKind::kContact;
  Point a, b;
  int32_t site = -1;
  Vec3 size{0.0, 0.0, 0.0};
  double margin = 0.0, height = 0.0;
  std::vector<int32_t> geoms_a, geoms_b;  // sorted
  std::vector<int32_t> qpos;
  Compare compare = Compare::kLE;
  double threshold = 0.0;
  bool all = true;
};

// Throws std::invalid_argument naming the term if an id is out of range for the model.
void check_goal_term(const GoalTerm& t, const mjModel* m, int64_t index);

bool eval_goal_term(const GoalTerm& t, const mjModel* m, const mjData* d);

}  // namespace ript::sim
