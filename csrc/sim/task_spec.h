// Generic, name-free descriptions of what a task observes and when it succeeds.
//
// Python describes, C++ executes: ript_fast/envs/metaworld/tasks.py holds one declarative spec per task with
// body/site/geom/joint *names*, resolves them to ids on the env's model, and hands these structs over. The
// evaluators below know a handful of generic kinds (a frame position plus an offset, a quaternion read three
// ways, a weighted distance compared with a threshold, a contact test) and no task names at all.
#pragma once

#include <mujoco/mujoco.h>

#include <array>
#include <cstdint>
#include <vector>

namespace ript::sim {

using Vec3 = std::array<double, 3>;
using Vec4 = std::array<double, 4>;

// Where a 3-vector comes from. The result is `mask * raw + offset` (+ the arc term for kJointArc), so a point
// can also drop or replace components (e.g. "the goal with z forced to 0.3").
enum class PointKind : int32_t {
  kConst = 0,     // the offset alone
  kBody = 1,      // xpos[id] (MetaWorld's get_body_com reads the body frame, not the COM)
  kSite = 2,      // site_xpos[id]
  kGeom = 3,      // geom_xpos[id]
  kTcp = 4,       // (site_xpos[id] + site_xpos[aux]) / 2, the gripper centre
  kJointArc = 5,  // xpos[id] + radius * (sin q, -cos q, 0) with q = qpos[aux] (a point on a turning dial)
  kQpos = 6,      // (qpos[id], 0, 0)
  kObs = 7,       // the clipped current observation obs[id : id + 3]
  kGoal = 8,      // the episode's goal (fixed at reset, or read live; see EnvConfig::goal)
  kParam = 9,     // the episode's parameters [id : id + 3] (values reset sampled, e.g. an initial position)
};

struct Point {
  PointKind kind = PointKind::kConst;
  int32_t id = -1;
  int32_t aux = -1;
  double radius = 0.0;
  Vec3 mask{1.0, 1.0, 1.0};
  Vec3 offset{0.0, 0.0, 0.0};
};

// Where an object's orientation comes from. The xmat kinds convert the frame's rotation matrix the way
// scipy's Rotation.from_matrix(...).as_quat() does (scalar LAST, scipy's branch choice and sign), because
// 22 MetaWorld tasks put exactly that in their observation; body xquat is MuJoCo's scalar-first quaternion.
enum class QuatKind : int32_t { kConst = 0, kBodyXquat = 1, kBodyXmat = 2, kGeomXmat = 3, kSiteXmat = 4 };

struct Quat {
  QuatKind kind = QuatKind::kConst;
  int32_t id = -1;
  Vec4 value{0.0, 0.0, 0.0, 0.0};
};

struct ObjectSlot {
  Point pos;
  Quat quat;
};

// One condition of a success rule; a rule is the conjunction of its terms.
//   kDistance: v = reduce(weight * (a - b)) with reduce = Euclidean norm or plain (signed) sum, compared with
//              `threshold`. A single nonzero weight under the norm is |component|, exactly.
//   kContact:  true iff the summed constraint force of the contacts between geoms[0] and geoms[2] is > 0 and
//              likewise for geoms[1] and geoms[2] (MetaWorld's touching_object: both finger pads on the object).
enum class TermKind : int32_t { kDistance = 0, kContact = 1 };
enum class Reduce : int32_t { kNorm = 0, kSum = 1 };
enum class Compare : int32_t { kLE = 0, kLT = 1, kGE = 2, kGT = 3 };

struct Term {
  TermKind kind = TermKind::kDistance;
  Point a, b;
  Vec3 weight{1.0, 1.0, 1.0};
  Reduce reduce = Reduce::kNorm;
  Compare compare = Compare::kLE;
  double threshold = 0.0;
  std::array<int32_t, 3> geoms{-1, -1, -1};
};

// The observation layout: cur = [hand xyz, gripper opening, per object slot: pos(3) + quat(4)] (zero padded),
// and the full observation is [cur, previous cur, goal] clipped to [low, high].
struct ObsSpec {
  int32_t hand_body = -1;
  std::array<int32_t, 2> finger_bodies{-1, -1};  // gripper opening = clip(|x_0 - x_1| / finger_span, 0, 1)
  double finger_span = 0.1;
  int32_t object_slots = 2;
  std::vector<ObjectSlot> objects;  // at most object_slots
  bool goal_visible = true;         // false: the goal part is zero (MetaWorld's partially observable mode)
  std::vector<double> low, high;    // clip bounds of the full observation (obs_dim each)

  int32_t cur_dim() const { return 4 + 7 * object_slots; }
  int32_t obs_dim() const { return 2 * cur_dim() + 3; }
};

// Values one episode evaluates against, set at reset.
struct EpisodeValues {
  Vec3 goal{0.0, 0.0, 0.0};
  const std::vector<double>* params = nullptr;
  const double* obs = nullptr;  // the clipped current observation (kObs points)
};

// v <compare> threshold.
bool compare(double v, Compare c, double threshold);

Vec3 eval_point(const Point& p, const mjModel* m, const mjData* d, const EpisodeValues& ep);
Vec4 eval_quat(const Quat& q, const mjData* d);
bool eval_term(const Term& t, const mjModel* m, const mjData* d, const EpisodeValues& ep);

// scipy's Rotation.from_matrix(R).as_quat() for an orthonormal R (row-major), scalar last.
Vec4 scipy_quat_from_matrix(const double* r);

// Writes the current part of the observation (cur_dim values) from mjData as it is (no kinematics run).
void gather_current(const ObsSpec& spec, const mjModel* m, const mjData* d, const EpisodeValues& ep, double* cur);

}  // namespace ript::sim
