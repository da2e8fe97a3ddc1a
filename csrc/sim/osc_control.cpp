#include "sim/osc_control.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "sim/small_linalg.h"

namespace ript::sim {

namespace {

double sign(double v) { return v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : 0.0); }

// robosuite's quat2mat of axisangle2quat(delta): the quaternion in float64, the matrix in float32 (robosuite
// casts the quaternion to float32 before building the matrix), returned widened to float64.
void axis_angle_matrix(const double delta[3], double r[9]) {
  const double angle = std::sqrt(delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2]);
  double q64[4] = {1.0, 0.0, 0.0, 0.0};  // w x y z
  if (angle != 0.0) {
    const double s = std::sin(angle / 2.0);
    q64[0] = std::cos(angle / 2.0);
    for (int k = 0; k < 3; ++k) q64[k + 1] = delta[k] / angle * s;
  }
  float q[4];
  for (int k = 0; k < 4; ++k) q[k] = static_cast<float>(q64[k]);
  const float n = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
  if (static_cast<double>(n) < 4.0 * 2.220446049250313e-16) {
    for (int k = 0; k < 9; ++k) r[k] = (k % 4 == 0) ? 1.0 : 0.0;
    return;
  }
  const float f = static_cast<float>(std::sqrt(2.0 / static_cast<double>(n)));
  for (float& v : q) v *= f;
  auto qq = [&](int a, int b) { return q[a] * q[b]; };
  const float m[9] = {1.0f - qq(2, 2) - qq(3, 3), qq(1, 2) - qq(3, 0),        qq(1, 3) + qq(2, 0),
                      qq(1, 2) + qq(3, 0),        1.0f - qq(1, 1) - qq(3, 3), qq(2, 3) - qq(1, 0),
                      qq(1, 3) - qq(2, 0),        qq(2, 3) + qq(1, 0),        1.0f - qq(1, 1) - qq(2, 2)};
  for (int k = 0; k < 9; ++k) r[k] = static_cast<double>(m[k]);
}

void cross_add(const double a[3], const double b[3], double out[3]) {
  out[0] += a[1] * b[2] - a[2] * b[1];
  out[1] += a[2] * b[0] - a[0] * b[2];
  out[2] += a[0] * b[1] - a[1] * b[0];
}

// robosuite's orientation_error(desired, current): half the sum of column cross products.
void orientation_error(const double* desired, const double* current, double err[3]) {
  double sum[3] = {0.0, 0.0, 0.0};
  for (int c = 0; c < 3; ++c) {
    const double rc[3] = {current[c], current[3 + c], current[6 + c]};
    const double rd[3] = {desired[c], desired[3 + c], desired[6 + c]};
    cross_add(rc, rd, sum);
  }
  for (int k = 0; k < 3; ++k) err[k] = 0.5 * sum[k];
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("osc: " + what);
}

}  // namespace

void OscScratch::size_for(const mjModel* m) {
  full_m.assign(static_cast<size_t>(m->nv) * m->nv, 0.0);
  jacp.assign(3 * static_cast<size_t>(m->nv), 0.0);
  jacr.assign(3 * static_cast<size_t>(m->nv), 0.0);
}

void check_osc(const OscConfig& c, const mjModel* m) {
  require(c.eef_site >= 0 && c.eef_site < m->nsite, "eef_site is not a site of the model");
  for (int k = 0; k < kArmDof; ++k) {
    require(c.qpos[k] >= 0 && c.qpos[k] < m->nq, "arm qpos address out of range");
    require(c.dofs[k] >= 0 && c.dofs[k] < m->nv, "arm dof address out of range");
    require(c.actuators[k] >= 0 && c.actuators[k] < m->nu, "arm actuator out of range");
    require(c.torque_low[k] <= c.torque_high[k], "torque_low > torque_high");
  }
  for (int32_t a : c.gripper_actuators) require(a >= 0 && a < m->nu, "gripper actuator out of range");
  require(c.substeps >= 1, "substeps must be >= 1");
  require(m->opt.integrator != mjINT_RK4, "the RK4 integrator cannot be split into mj_step1/mj_step2");
}

void osc_set_goal(const OscConfig& c, const mjModel* m, const mjData* d, const double action[kOscActionDim],
                  OscState& s) {
  double scaled[6];
  for (int k = 0; k < 6; ++k) {
    const double a = std::min(std::max(action[k], c.input_min[k]), c.input_max[k]);
    scaled[k] = (a - c.input_mid[k]) * c.action_scale[k] + c.output_mid[k];
  }
  const double* ee_pos = s.stale ? c.reset_view.ee_pos.data() : d->site_xpos + 3 * c.eef_site;
  const double* ee_ori = s.stale ? c.reset_view.ee_ori.data() : d->site_xmat + 9 * c.eef_site;
  // robosuite keeps the previous orientation goal when the rotation command is exactly zero.
  if (scaled[3] != 0.0 || scaled[4] != 0.0 || scaled[5] != 0.0) {
    double r[9];
    axis_angle_matrix(scaled + 3, r);
    linalg::matmul(r, ee_ori, s.goal_ori.data(), 3, 3, 3);
  }
  for (int k = 0; k < 3; ++k) s.goal_pos[k] = ee_pos[k] + scaled[k];
}

void read_arm(const OscConfig& c, const mjModel* m, const mjData* d, OscScratch& scratch, ArmView& v) {
  constexpr int n = kArmDof;
  const int nv = m->nv;
  mj_jacSite(m, d, scratch.jacp.data(), scratch.jacr.data(), c.eef_site);
  mj_fullM(m, scratch.full_m.data(), d->qM);
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < n; ++k) {
      v.jac[r * n + k] = scratch.jacp[r * nv + c.dofs[k]];
      v.jac[(3 + r) * n + k] = scratch.jacr[r * nv + c.dofs[k]];
    }
  }
  for (int a = 0; a < n; ++a) {
    v.q[a] = d->qpos[c.qpos[a]];
    v.qdot[a] = d->qvel[c.dofs[a]];
    for (int b = 0; b < n; ++b) v.mass[a * n + b] = scratch.full_m[c.dofs[a] * nv + c.dofs[b]];
  }
  // End-effector velocity over every dof, as robosuite's get_site_xvelp/xvelr (jac @ qvel).
  linalg::matvec(scratch.jacp.data(), d->qvel, v.ee_vel.data(), 3, nv);
  linalg::matvec(scratch.jacr.data(), d->qvel, v.ee_vel.data() + 3, 3, nv);
  std::copy(d->site_xpos + 3 * c.eef_site, d->site_xpos + 3 * c.eef_site + 3, v.ee_pos.begin());
  std::copy(d->site_xmat + 9 * c.eef_site, d->site_xmat + 9 * c.eef_site + 9, v.ee_ori.begin());
}

void osc_apply(const OscConfig& c, const mjModel* m, mjData* d, double gripper_action, OscState& s,
               OscScratch& scratch) {
  constexpr int n = kArmDof;
  if (!s.stale) read_arm(c, m, d, scratch, scratch.view);
  const ArmView& v = s.stale ? c.reset_view : scratch.view;
  s.stale = false;
  const double* j = v.jac.data();
  const double* mass = v.mass.data();
  const double* vel = v.ee_vel.data();
  const double* ee_pos = v.ee_pos.data();
  double ori_err[3];
  orientation_error(s.goal_ori.data(), v.ee_ori.data(), ori_err);
  double force[6];
  for (int k = 0; k < 3; ++k) {
    force[k] = (s.goal_pos[k] - ee_pos[k]) * c.kp[k] + (-vel[k]) * c.kd[k];
    force[3 + k] = ori_err[k] * c.kp[3 + k] + (-vel[3 + k]) * c.kd[3 + k];
  }

  double minv[n * n];
  linalg::sym_inverse(mass, minv, n);
  double minv_jt[n * 6];  // M^-1 J^T (n x 6)
  linalg::matmul_bt(minv, j, minv_jt, n, n, 6);
  double lam_inv[36], lam_full[36];
  linalg::matmul(j, minv_jt, lam_inv, 6, n, 6);
  linalg::sym_inverse(lam_inv, lam_full, 6);
  double lp_inv[9], lo_inv[9], lp[9], lo[9];
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) {
      lp_inv[r * 3 + k] = lam_inv[r * 6 + k];
      lo_inv[r * 3 + k] = lam_inv[(3 + r) * 6 + 3 + k];
    }
  }
  linalg::sym_inverse(lp_inv, lp, 3);
  linalg::sym_inverse(lo_inv, lo, 3);
  double wrench[6];
  linalg::matvec(lp, force, wrench, 3, 3);
  linalg::matvec(lo, force + 3, wrench + 3, 3, 3);

  double torque[n];
  linalg::matvec_t(j, wrench, torque, 6, n);
  for (int k = 0; k < n; ++k) torque[k] += d->qfrc_bias[c.dofs[k]];

  // Nullspace posture torques: N^T M (kp (q0 - q) - kv qdot), N = I - Jbar J, Jbar = M^-1 J^T Lambda.
  double jbar[n * 6], nullspace[n * n];
  linalg::matmul(minv_jt, lam_full, jbar, n, 6, 6);
  linalg::matmul(jbar, j, nullspace, n, 6, n);
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) nullspace[a * n + b] = (a == b ? 1.0 : 0.0) - nullspace[a * n + b];
  }
  const double kv = std::sqrt(c.nullspace_kp) * 2.0;
  double posture[n], pose_torque[n], null_torque[n];
  for (int k = 0; k < n; ++k) {
    posture[k] = c.nullspace_kp * (c.initial_joint[k] - v.q[k]) - kv * v.qdot[k];
  }
  linalg::matvec(mass, posture, pose_torque, n, n);
  linalg::matvec_t(nullspace, pose_torque, null_torque, n, n);
  for (int k = 0; k < n; ++k) {
    const double t = torque[k] + null_torque[k];
    d->ctrl[c.actuators[k]] = std::min(std::max(t, c.torque_low[k]), c.torque_high[k]);
  }

  const double g = sign(gripper_action);
  for (int k = 0; k < 2; ++k) {
    s.gripper[k] = std::min(std::max(s.gripper[k] + c.gripper_direction[k] * c.gripper_speed * g, -1.0), 1.0);
    d->ctrl[c.gripper_actuators[k]] = c.gripper_bias[k] + c.gripper_weight[k] * s.gripper[k];
  }
}

}  // namespace ript::sim
