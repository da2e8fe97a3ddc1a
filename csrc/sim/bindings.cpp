// _C.sim: the batched MuJoCo stepper. Spec structs are plain records filled in by ript_fast/envs; BatchSim
// owns its output arrays (numpy, preallocated once) and steps with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "sim/batch_sim.h"
#include "sim/binding_helpers.h"
#include "sim/model_view.h"
#include "sim/raw_step.h"

namespace py = pybind11;

namespace ript {
namespace {

using namespace ript::sim;
using sim_bindings::check_step_args;
using sim_bindings::checked_size;
using sim_bindings::require;

// The Python-facing batch: the simulator plus the numpy arrays it writes into.
class PyBatchSim : public sim_bindings::OutputArrays {
 public:
  explicit PyBatchSim(std::vector<EnvConfig> envs)
      : OutputArrays(checked_size(envs), envs.empty() ? 0 : envs[0].obs.obs_dim(), BatchSim::context_dim_of(envs)) {
    sim = std::make_unique<BatchSim>(std::move(envs), outputs());
  }

  void step(const py::array& actions, const py::array& active) {
    const bool f32 = check_step_args(actions, active, sim->size(), 4);
    const void* a = actions.data();
    const bool* m = static_cast<const bool*>(active.data());
    py::gil_scoped_release nogil;
    sim->step(a, f32, m);
  }

  void restore(const py::array_t<double, py::array::c_style>& states, const py::array_t<int64_t, py::array::c_style>& ids) {
    require(states.ndim() == 2, "init_state: must be a 2-d (rows, S) float64 array");
    require(ids.ndim() == 1 && ids.shape(0) == states.shape(0), "env_ids: must have one entry per init_state row");
    const double* s = states.data();
    const int64_t* e = ids.data();
    const int64_t rows = states.shape(0), width = states.shape(1);
    py::gil_scoped_release nogil;
    sim->restore(s, rows, width, e);
  }

  std::unique_ptr<BatchSim> sim;
};

// A ModelView plus the mujoco.MjModel it borrows from, held so that the template outlives the view.
struct PyModelView {
  explicit PyModelView(py::object tpl)
      : template_model(std::move(tpl)),
        view(reinterpret_cast<const mjModel*>(template_model.attr("_address").cast<uintptr_t>())) {}

  py::object template_model;
  ModelView view;
};

// An (n, 3) float64 array over a view's private field, keeping the view alive.
py::array_t<double> rows_of_3(const py::object& owner, double* field, int n) {
  return py::array_t<double>({static_cast<py::ssize_t>(n), py::ssize_t{3}}, field, owner);
}

void bind_model_view(py::module_& m) {
  py::class_<PyModelView>(m, "ModelView",
                          "One env's view of a task's shared, read-only mujoco.MjModel: private body_pos and "
                          "site_pos, every other field the template's (csrc/sim/model_view.h)")
      .def(py::init<py::object>(), py::arg("template"))
      .def_property_readonly(
          "_address", [](PyModelView& v) { return reinterpret_cast<uintptr_t>(v.view.model()); },
          "The view's mjModel* (as mujoco.MjModel._address): for the engine, never for mj_deleteModel/mj_copyModel")
      .def_readonly("template", &PyModelView::template_model, "The mujoco.MjModel every other field is read from")
      .def_property_readonly(
          "body_pos",
          [](py::object self) {
            mjModel* v = self.cast<PyModelView&>().view.model();
            return rows_of_3(self, v->body_pos, v->nbody);
          },
          "(nbody, 3) this env's body positions (writable, no copy)")
      .def_property_readonly(
          "site_pos",
          [](py::object self) {
            mjModel* v = self.cast<PyModelView&>().view.model();
            return rows_of_3(self, v->site_pos, v->nsite);
          },
          "(nsite, 3) this env's site positions (writable, no copy)");
}

void bind_specs(py::module_& m) {
  py::enum_<PointKind>(m, "PointKind")
      .value("const", PointKind::kConst)
      .value("body", PointKind::kBody)
      .value("site", PointKind::kSite)
      .value("geom", PointKind::kGeom)
      .value("tcp", PointKind::kTcp)
      .value("joint_arc", PointKind::kJointArc)
      .value("qpos", PointKind::kQpos)
      .value("obs", PointKind::kObs)
      .value("goal", PointKind::kGoal)
      .value("param", PointKind::kParam);
  py::enum_<QuatKind>(m, "QuatKind")
      .value("const", QuatKind::kConst)
      .value("body_xquat", QuatKind::kBodyXquat)
      .value("body_xmat", QuatKind::kBodyXmat)
      .value("geom_xmat", QuatKind::kGeomXmat)
      .value("site_xmat", QuatKind::kSiteXmat);
  py::enum_<TermKind>(m, "TermKind").value("distance", TermKind::kDistance).value("contact", TermKind::kContact);
  py::enum_<Reduce>(m, "Reduce").value("norm", Reduce::kNorm).value("sum", Reduce::kSum);
  py::enum_<Compare>(m, "Compare")
      .value("le", Compare::kLE)
      .value("lt", Compare::kLT)
      .value("ge", Compare::kGE)
      .value("gt", Compare::kGT);

  py::class_<Point>(m, "Point")
      .def(py::init<>())
      .def_readwrite("kind", &Point::kind)
      .def_readwrite("id", &Point::id)
      .def_readwrite("aux", &Point::aux)
      .def_readwrite("radius", &Point::radius)
      .def_readwrite("mask", &Point::mask)
      .def_readwrite("offset", &Point::offset);
  py::class_<Quat>(m, "Quat")
      .def(py::init<>())
      .def_readwrite("kind", &Quat::kind)
      .def_readwrite("id", &Quat::id)
      .def_readwrite("value", &Quat::value);
  py::class_<ObjectSlot>(m, "ObjectSlot")
      .def(py::init<>())
      .def_readwrite("pos", &ObjectSlot::pos)
      .def_readwrite("quat", &ObjectSlot::quat);
  py::class_<Term>(m, "Term")
      .def(py::init<>())
      .def_readwrite("kind", &Term::kind)
      .def_readwrite("a", &Term::a)
      .def_readwrite("b", &Term::b)
      .def_readwrite("weight", &Term::weight)
      .def_readwrite("reduce", &Term::reduce)
      .def_readwrite("compare", &Term::compare)
      .def_readwrite("threshold", &Term::threshold)
      .def_readwrite("geoms", &Term::geoms);
  py::class_<ObsSpec>(m, "ObsSpec")
      .def(py::init<>())
      .def_readwrite("hand_body", &ObsSpec::hand_body)
      .def_readwrite("finger_bodies", &ObsSpec::finger_bodies)
      .def_readwrite("finger_span", &ObsSpec::finger_span)
      .def_readwrite("object_slots", &ObsSpec::object_slots)
      .def_readwrite("objects", &ObsSpec::objects)
      .def_readwrite("goal_visible", &ObsSpec::goal_visible)
      .def_readwrite("low", &ObsSpec::low)
      .def_readwrite("high", &ObsSpec::high)
      .def_property_readonly("cur_dim", &ObsSpec::cur_dim)
      .def_property_readonly("obs_dim", &ObsSpec::obs_dim);
  py::class_<MocapControl>(m, "MocapControl")
      .def(py::init<>())
      .def_readwrite("mocap", &MocapControl::mocap)
      .def_readwrite("action_scale", &MocapControl::action_scale)
      .def_readwrite("low", &MocapControl::low)
      .def_readwrite("high", &MocapControl::high)
      .def_readwrite("quat", &MocapControl::quat)
      .def_readwrite("gripper_sign", &MocapControl::gripper_sign)
      .def_readwrite("frame_skip", &MocapControl::frame_skip);
  py::class_<EnvConfig>(m, "EnvConfig")
      .def(py::init<>())
      .def_readwrite("model", &EnvConfig::model)
      .def_readwrite("data", &EnvConfig::data)
      .def_readwrite("task_id", &EnvConfig::task_id)
      .def_readwrite("control", &EnvConfig::control)
      .def_readwrite("obs", &EnvConfig::obs)
      .def_readwrite("goal", &EnvConfig::goal)
      .def_readwrite("success", &EnvConfig::success)
      .def_readwrite("n_params", &EnvConfig::n_params)
      .def_readwrite("n_rand", &EnvConfig::n_rand)
      .def_readwrite("max_steps", &EnvConfig::max_steps)
      .def_readwrite("terminate_on_success", &EnvConfig::terminate_on_success);
}

}  // namespace

void bind_sim(py::module_& root) {
  auto m = root.def_submodule("sim", "Batched MuJoCo stepping on the core's thread pool (GIL released)");
  bind_specs(m);
  bind_model_view(m);
  py::class_<PyBatchSim>(m, "BatchSim")
      .def(py::init<std::vector<EnvConfig>>(), py::arg("envs"))
      .def_property_readonly("size", [](const PyBatchSim& s) { return s.sim->size(); })
      .def_property_readonly("obs_dim", [](const PyBatchSim& s) { return s.sim->obs_dim(); })
      .def_property_readonly("context_dim", [](const PyBatchSim& s) { return s.sim->context_dim(); })
      .def_readonly("obs", &PyBatchSim::obs)
      .def_readonly("reward", &PyBatchSim::reward)
      .def_readonly("terminated", &PyBatchSim::terminated)
      .def_readonly("truncated", &PyBatchSim::truncated)
      .def_readonly("success", &PyBatchSim::success)
      .def_readonly("sim_error", &PyBatchSim::sim_error)
      .def_readonly("context", &PyBatchSim::context)
      .def("step", &PyBatchSim::step, py::arg("actions"), py::arg("active"),
           "Step the envs with active[i] true; outputs land in the arrays above")
      .def("begin_episode",
           [](PyBatchSim& s, int64_t i, const Vec3& target, const std::vector<double>& params,
              const std::vector<double>& rand_vec) { s.sim->begin_episode(i, target, params, rand_vec); },
           py::arg("env"), py::arg("target"), py::arg("params"), py::arg("rand_vec"),
           "Start env's episode from its mjData as the task's reset left it; captures its context")
      .def("restore", &PyBatchSim::restore, py::arg("states"), py::arg("env_ids"),
           "Restart envs env_ids[r] from context rows states[r]");
  m.def(
      "settle_mocap",
      [](uintptr_t model, uintptr_t data, int32_t mocap, const Vec3& pos, const Vec4& quat,
         const std::array<double, 2>& ctrl, int32_t iterations, int32_t frame_skip) {
        require(model != 0 && data != 0, "settle_mocap: null model or data address");
        py::gil_scoped_release nogil;
        settle_mocap(reinterpret_cast<const mjModel*>(model), reinterpret_cast<mjData*>(data), mocap, pos, quat, ctrl,
                     iterations, frame_skip);
      },
      py::arg("model"), py::arg("data"), py::arg("mocap"), py::arg("pos"), py::arg("quat"), py::arg("ctrl"),
      py::arg("iterations"), py::arg("frame_skip"),
      "MetaWorld's reset settling loop in C++: hold the mocap at pos/quat with ctrl, frame_skip steps each time");
  m.def(
      "step_raw",
      [](const std::vector<uintptr_t>& models, const std::vector<uintptr_t>& datas, int32_t nstep) {
        py::gil_scoped_release nogil;
        return step_raw(models, datas, nstep);
      },
      py::arg("models"), py::arg("datas"), py::arg("nstep"),
      "nstep mj_steps on every (model, data) address pair, in parallel; per env: stayed finite");
  bind_libero(m);
  m.def("context_header_size", [] { return ContextLayout::kHeader; });
  m.def("context_version", [] { return ContextLayout::kVersion; });
}

}  // namespace ript
