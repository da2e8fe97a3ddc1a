// robosuite 1.4's OSC_POSE arm controller and Panda gripper, as LIBERO drives a Panda, in C++.
//
// One LIBERO control step (20 Hz) is `substeps` physics steps (25 x 2 ms). At the first substep the 7-d action
// sets the goal: goal_pos = ee_pos + scale(a[0:3]), and, unless the rotation part is exactly zero, goal_ori =
// R(scale(a[3:6])) @ ee_ori (R from an axis-angle, built in float32 as robosuite's quat2mat does). Every
// substep then computes, from the state at that substep (mass matrix, site Jacobians, bias forces):
//   torques = J^T [Lambda_pos F, Lambda_ori T] + bias + N^T M (kp_null (q0 - q) - kv_null qdot),
// clipped to the arm actuators' limits, and moves the gripper command one `gripper_speed` towards
// sign(a[6]) (clipped to [-1, 1], mapped onto the finger actuators' ctrlrange). The goal orientation and the
// gripper command carry over from step to step: they are controller state (OscState), kept per env.
#pragma once

#include <mujoco/mujoco.h>

#include <array>
#include <cstdint>
#include <vector>

namespace ript::sim {

constexpr int kArmDof = 7;
constexpr int kOscActionDim = 7;  // dx dy dz, ax ay az (axis-angle), gripper

// What the controller reads of the arm at one instant.
struct ArmView {
  std::array<double, 3> ee_pos{};
  std::array<double, 9> ee_ori{};  // row-major
  std::array<double, 6> ee_vel{};  // linear, angular
  std::array<double, 6 * kArmDof> jac{};  // rows: position (3), rotation (3)
  std::array<double, kArmDof * kArmDof> mass{};
  std::array<double, kArmDof> q{}, qdot{};
};

struct OscConfig {
  std::array<int32_t, kArmDof> qpos{};       // arm joints' qpos addresses
  std::array<int32_t, kArmDof> dofs{};       // arm joints' dof (qvel) addresses
  std::array<int32_t, kArmDof> actuators{};  // arm torque actuators
  std::array<int32_t, 2> gripper_actuators{-1, -1};
  int32_t eef_site = -1;  // the point the controller moves (robosuite's grip site)
  std::array<double, 6> kp{}, kd{};
  // robosuite's scale_action: clip(a, input_min, input_max) - input_mid) * scale + output_mid, per dimension.
  std::array<double, 6> input_min{}, input_max{}, input_mid{}, output_mid{}, action_scale{};
  std::array<double, kArmDof> initial_joint{};  // the nullspace posture
  std::array<double, kArmDof> torque_low{}, torque_high{};
  double nullspace_kp = 10.0;
  std::array<double, 2> gripper_direction{-1.0, 1.0};  // per finger actuator: command += dir * speed * sign(a)
  double gripper_speed = 0.01;
  std::array<double, 2> gripper_bias{}, gripper_weight{};  // ctrl = bias + weight * command
  int32_t substeps = 25;
  // robosuite refreshes its controller's view of the arm only after it has run once: right after LIBERO's
  // set_init_state, the first policy step still sees the arm as the env's reset left it (this snapshot), for
  // the goal and for the first substep's torques (bias forces are read live). Reproduced for equivalence.
  ArmView reset_view;
};

// What the controller carries between control steps.
struct OscState {
  std::array<double, 9> goal_ori{};  // row-major rotation matrix
  std::array<double, 3> goal_pos{};
  std::array<double, 2> gripper{};   // the gripper command in [-1, 1] per finger actuator
  bool stale = false;                // the next policy step reads `reset_view` (see OscConfig)
};

// Per-env scratch (sized once for the model; no allocation while stepping).
struct OscScratch {
  std::vector<mjtNum> full_m, jacp, jacr;
  ArmView view;
  void size_for(const mjModel* m);
};

// Validates ids and limits against the model; throws std::invalid_argument naming what is wrong.
void check_osc(const OscConfig& c, const mjModel* m);

// Reads the arm's current state (mj_step1's quantities must be up to date) into `v`.
void read_arm(const OscConfig& c, const mjModel* m, const mjData* d, OscScratch& scratch, ArmView& v);

// The policy-step part: reads the current end-effector pose (kinematics must be up to date) and sets the goal.
void osc_set_goal(const OscConfig& c, const mjModel* m, const mjData* d, const double action[kOscActionDim],
                  OscState& s);

// One substep's control: writes the arm torques and finger commands into d->ctrl. Needs mj_step1's quantities
// (kinematics, com, mass matrix, velocities, bias forces) for the current state.
void osc_apply(const OscConfig& c, const mjModel* m, mjData* d, double gripper_action, OscState& s,
               OscScratch& scratch);

}  // namespace ript::sim
