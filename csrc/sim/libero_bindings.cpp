// _C.sim.LiberoSim and its spec records (OscConfig, OscState, GoalTerm, LiberoEnvConfig), filled in by
// ript_fast/envs/libero/compiler.py. The batch owns its numpy outputs and steps with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "bindings.h"
#include "sim/binding_helpers.h"
#include "sim/libero_sim.h"

namespace py = pybind11;

namespace ript {
namespace {

using namespace ript::sim;
using sim_bindings::check_step_args;
using sim_bindings::checked_size;
using sim_bindings::require;

class PyLiberoSim : public sim_bindings::OutputArrays {
 public:
  explicit PyLiberoSim(std::vector<LiberoEnvConfig> envs)
      : OutputArrays(checked_size(envs), kLiberoObsDim, LiberoSim::context_dim_of(envs)) {
    sim = std::make_unique<LiberoSim>(std::move(envs), outputs());
  }

  void step(const py::array& actions, const py::array& active) {
    const bool f32 = check_step_args(actions, active, sim->size(), kOscActionDim);
    const void* a = actions.data();
    const bool* m = static_cast<const bool*>(active.data());
    py::gil_scoped_release nogil;
    sim->step(a, f32, m);
  }

  // kind: true = LIBERO init states ([time, qpos, qvel] rows), false = our context vectors.
  void start(const py::array_t<double, py::array::c_style>& rows, const py::array_t<int64_t, py::array::c_style>& ids,
             bool libero_rows) {
    require(rows.ndim() == 2, "init_state: must be a 2-d (rows, S) float64 array");
    require(ids.ndim() == 1 && ids.shape(0) == rows.shape(0), "env_ids: must have one entry per init_state row");
    const double* s = rows.data();
    const int64_t* e = ids.data();
    const int64_t count = rows.shape(0), width = rows.shape(1);
    py::gil_scoped_release nogil;
    if (libero_rows) {
      sim->load_init_states(s, count, width, e);
    } else {
      sim->restore(s, count, width, e);
    }
  }

  std::unique_ptr<LiberoSim> sim;
};

void bind_records(py::module_& m) {
  py::enum_<GoalKind>(m, "GoalKind")
      .value("contact", GoalKind::kContact)
      .value("compare_z", GoalKind::kCompareZ)
      .value("near_xy", GoalKind::kNearXY)
      .value("in_site_box", GoalKind::kInSiteBox)
      .value("on_site_top", GoalKind::kOnSiteTop)
      .value("joint", GoalKind::kJoint);
  py::class_<GoalTerm>(m, "GoalTerm")
      .def(py::init<>())
      .def_readwrite("kind", &GoalTerm::kind)
      .def_readwrite("a", &GoalTerm::a)
      .def_readwrite("b", &GoalTerm::b)
      .def_readwrite("site", &GoalTerm::site)
      .def_readwrite("size", &GoalTerm::size)
      .def_readwrite("margin", &GoalTerm::margin)
      .def_readwrite("height", &GoalTerm::height)
      .def_readwrite("geoms_a", &GoalTerm::geoms_a)
      .def_readwrite("geoms_b", &GoalTerm::geoms_b)
      .def_readwrite("qpos", &GoalTerm::qpos)
      .def_readwrite("compare", &GoalTerm::compare)
      .def_readwrite("threshold", &GoalTerm::threshold)
      .def_readwrite("all", &GoalTerm::all);
  py::class_<ArmView>(m, "ArmView")
      .def(py::init<>())
      .def_readwrite("ee_pos", &ArmView::ee_pos)
      .def_readwrite("ee_ori", &ArmView::ee_ori)
      .def_readwrite("ee_vel", &ArmView::ee_vel)
      .def_readwrite("jac", &ArmView::jac)
      .def_readwrite("mass", &ArmView::mass)
      .def_readwrite("q", &ArmView::q)
      .def_readwrite("qdot", &ArmView::qdot);
  py::class_<OscConfig>(m, "OscConfig")
      .def(py::init<>())
      .def_readwrite("qpos", &OscConfig::qpos)
      .def_readwrite("dofs", &OscConfig::dofs)
      .def_readwrite("actuators", &OscConfig::actuators)
      .def_readwrite("gripper_actuators", &OscConfig::gripper_actuators)
      .def_readwrite("eef_site", &OscConfig::eef_site)
      .def_readwrite("kp", &OscConfig::kp)
      .def_readwrite("kd", &OscConfig::kd)
      .def_readwrite("input_min", &OscConfig::input_min)
      .def_readwrite("input_max", &OscConfig::input_max)
      .def_readwrite("input_mid", &OscConfig::input_mid)
      .def_readwrite("output_mid", &OscConfig::output_mid)
      .def_readwrite("action_scale", &OscConfig::action_scale)
      .def_readwrite("initial_joint", &OscConfig::initial_joint)
      .def_readwrite("torque_low", &OscConfig::torque_low)
      .def_readwrite("torque_high", &OscConfig::torque_high)
      .def_readwrite("nullspace_kp", &OscConfig::nullspace_kp)
      .def_readwrite("gripper_direction", &OscConfig::gripper_direction)
      .def_readwrite("gripper_speed", &OscConfig::gripper_speed)
      .def_readwrite("gripper_bias", &OscConfig::gripper_bias)
      .def_readwrite("gripper_weight", &OscConfig::gripper_weight)
      .def_readwrite("substeps", &OscConfig::substeps)
      .def_readwrite("reset_view", &OscConfig::reset_view);
  py::class_<OscState>(m, "OscState")
      .def(py::init<>())
      .def_readwrite("goal_ori", &OscState::goal_ori)
      .def_readwrite("goal_pos", &OscState::goal_pos)
      .def_readwrite("gripper", &OscState::gripper)
      .def_readwrite("stale", &OscState::stale);
  py::class_<LiberoEnvConfig>(m, "LiberoEnvConfig")
      .def(py::init<>())
      .def_readwrite("model", &LiberoEnvConfig::model)
      .def_readwrite("data", &LiberoEnvConfig::data)
      .def_readwrite("task_id", &LiberoEnvConfig::task_id)
      .def_readwrite("control", &LiberoEnvConfig::control)
      .def_readwrite("initial", &LiberoEnvConfig::initial)
      .def_readwrite("gripper_qpos", &LiberoEnvConfig::gripper_qpos)
      .def_readwrite("eef_body", &LiberoEnvConfig::eef_body)
      .def_readwrite("goal", &LiberoEnvConfig::goal)
      .def_readwrite("max_steps", &LiberoEnvConfig::max_steps)
      .def_readwrite("terminate_on_success", &LiberoEnvConfig::terminate_on_success);
}

}  // namespace

void bind_libero(py::module_& m) {
  bind_records(m);
  py::class_<PyLiberoSim>(m, "LiberoSim")
      .def(py::init<std::vector<LiberoEnvConfig>>(), py::arg("envs"))
      .def_property_readonly("size", [](const PyLiberoSim& s) { return s.sim->size(); })
      .def_property_readonly("obs_dim", [](const PyLiberoSim&) { return kLiberoObsDim; })
      .def_property_readonly("context_dim", [](const PyLiberoSim& s) { return s.sim->context_dim(); })
      .def_readonly("obs", &PyLiberoSim::obs)
      .def_readonly("reward", &PyLiberoSim::reward)
      .def_readonly("terminated", &PyLiberoSim::terminated)
      .def_readonly("truncated", &PyLiberoSim::truncated)
      .def_readonly("success", &PyLiberoSim::success)
      .def_readonly("sim_error", &PyLiberoSim::sim_error)
      .def_readonly("context", &PyLiberoSim::context)
      .def("step", &PyLiberoSim::step, py::arg("actions"), py::arg("active"),
           "One control step (substeps x OSC_POSE) of the envs with active[i] true")
      .def(
          "load_init_states",
          [](PyLiberoSim& s, const py::array_t<double, py::array::c_style>& rows,
             const py::array_t<int64_t, py::array::c_style>& ids) { s.start(rows, ids, true); },
          py::arg("rows"), py::arg("env_ids"), "Start envs from LIBERO init states [time, qpos, qvel]")
      .def(
          "restore",
          [](PyLiberoSim& s, const py::array_t<double, py::array::c_style>& rows,
             const py::array_t<int64_t, py::array::c_style>& ids) { s.start(rows, ids, false); },
          py::arg("states"), py::arg("env_ids"), "Restart envs from context vectors")
      .def(
          "goal_holds", [](const PyLiberoSim& s, int64_t env) { return s.sim->goal_holds(env); }, py::arg("env"),
          "Whether env's goal holds on its data as it is now");
}

}  // namespace ript
