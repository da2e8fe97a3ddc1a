// _C.sim: the batched MuJoCo stepper. Spec structs are plain records filled in by ript_fast/envs; BatchSim
// owns its output arrays (numpy, preallocated once) and steps with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "sim/batch_sim.h"
#include "sim/raw_step.h"

namespace py = pybind11;

namespace ript {
namespace {

using namespace ript::sim;

template <typename T>
py::array_t<T> zeros(std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), T{});
  return a;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

bool c_contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

// The Python-facing batch: the simulator plus the numpy arrays it writes into.
class PyBatchSim {
 public:
  explicit PyBatchSim(std::vector<EnvConfig> envs) {
    require(!envs.empty(), "envs: needs at least one env");
    const auto n = static_cast<py::ssize_t>(envs.size());
    obs = zeros<double>({n, envs[0].obs.obs_dim()});
    reward = zeros<double>({n});
    terminated = zeros<bool>({n});
    truncated = zeros<bool>({n});
    success = zeros<bool>({n});
    sim_error = zeros<bool>({n});
    context = zeros<double>({n, static_cast<py::ssize_t>(BatchSim::context_dim_of(envs))});
    Outputs out{obs.mutable_data(),       reward.mutable_data(),    terminated.mutable_data(),
                truncated.mutable_data(), success.mutable_data(),   sim_error.mutable_data(),
                context.mutable_data()};
    sim = std::make_unique<BatchSim>(std::move(envs), out);
  }

  void step(const py::array& actions, const py::array& active) {
    const auto n = sim->size();
    const bool f32 = actions.dtype().is(py::dtype::of<float>());
    require(f32 || actions.dtype().is(py::dtype::of<double>()), "actions: dtype must be float32 or float64");
    require(actions.ndim() == 2 && actions.shape(0) == n && actions.shape(1) == 4 && c_contiguous(actions),
            "actions: must be a C-contiguous (" + std::to_string(n) + ", 4) array");
    require(active.dtype().is(py::dtype::of<bool>()) && active.ndim() == 1 && active.shape(0) == n &&
                c_contiguous(active),
            "active: must be a C-contiguous (" + std::to_string(n) + ",) bool array");
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
  py::array_t<double> obs, reward, context;
  py::array_t<bool> terminated, truncated, success, sim_error;
};

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
  m.def("context_header_size", [] { return ContextLayout::kHeader; });
  m.def("context_version", [] { return ContextLayout::kVersion; });
}

}  // namespace ript
