// _C.render: the batch renderer over raw buffers (numpy arrays owned by ript_fast/envs/rendering.py) and
// MjModel/MjData addresses from MuJoCo's Python objects. Drawing runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings.h"
#include "render/batch_renderer.h"
#include "sim/binding_helpers.h"

namespace py = pybind11;

namespace ript {
namespace {

using render::BatchRenderer;
using render::RenderOutputs;
using render::RenderSpec;
using sim_bindings::c_contiguous;
using sim_bindings::require;

// The renderer plus the arrays it writes into (held, so they outlive it whatever Python does with its names).
class PyBatchRenderer {
 public:
  PyBatchRenderer(RenderSpec spec, const std::vector<py::array>& images, const py::array& current, int slots)
      : images_(images), current_(current) {
    const auto n = static_cast<py::ssize_t>(spec.datas.size());
    const auto cameras = static_cast<py::ssize_t>(images.size());
    require(n > 0 && cameras > 0, "envs and images: need at least one env and one camera");
    RenderOutputs out;
    for (const py::array& a : images_) {
      require(a.dtype().is(py::dtype::of<uint8_t>()) && a.ndim() == 4 && a.shape(0) == n && a.shape(1) == spec.height &&
                  a.shape(2) == spec.width && a.shape(3) == 3 && c_contiguous(a) && a.writeable(),
              "images: each must be a writeable C-contiguous (N, height, width, 3) uint8 array");
      out.images.push_back(static_cast<uint8_t*>(const_cast<void*>(a.data())));
    }
    require(current_.dtype().is(py::dtype::of<bool>()) && current_.ndim() == 2 && current_.shape(0) == n &&
                current_.shape(1) == cameras && c_contiguous(current_) && current_.writeable(),
            "current: must be a writeable C-contiguous (N, cameras) bool array");
    out.current = static_cast<bool*>(const_cast<void*>(current_.data()));
    py::gil_scoped_release nogil;
    renderer_ = std::make_unique<BatchRenderer>(std::move(spec), std::move(out), slots);
  }

  void render(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& rows,
              const py::array_t<bool, py::array::c_style>& wanted) {
    require(renderer_ != nullptr, "render: this renderer was closed");
    require(rows.ndim() == 1, "rows: must be a 1-d array of env indices");
    require(wanted.ndim() == 1 && wanted.shape(0) == renderer_->cameras(), "cameras: one bool per camera");
    const int64_t* r = rows.data();
    const bool* w = wanted.data();
    const int64_t n = rows.shape(0);
    py::gil_scoped_release nogil;
    renderer_->render(r, n, w);
  }

  void close() {
    py::gil_scoped_release nogil;
    renderer_.reset();
  }

  int64_t slots() const {
    require(renderer_ != nullptr, "slots: this renderer was closed");
    return renderer_->slots();
  }

 private:
  std::vector<py::array> images_;
  py::array current_;
  std::unique_ptr<BatchRenderer> renderer_;
};

}  // namespace

void bind_render(py::module_& root) {
  auto m = root.def_submodule("render", "Batched offscreen MuJoCo rendering on the core's thread pool (EGL or OSMesa)");
  py::register_exception<render::GlError>(m, "GlError", PyExc_RuntimeError);
  m.def(
      "check_gl",
      [] {
        py::gil_scoped_release nogil;
        const std::unique_lock<std::mutex> gl = render::gl_turn();
        render::GlContext probe;
      },
      "Make and free one GL context: raises GlError (saying what to install or set) where GL is not usable");
  m.def(
      "gl_platform", [] { return render::gl_platform(); },
      "Where the engine draws: 'surfaceless' (EGL, a display of its own on Mesa's software rasterizer), 'device' "
      "(EGL) or 'osmesa'; raises GlError where GL is not usable");
  m.def(
      "default_slots",
      [] {
        py::gil_scoped_release nogil;
        return BatchRenderer::default_slots();
      },
      "GL contexts a renderer makes unless told: 1 on Mesa's software rasterizer (its GL takes turns, so more "
      "contexts only cost memory), else the pool's threads; raises GlError where GL is not usable");
  py::class_<RenderSpec>(m, "RenderSpec")
      .def(py::init<>())
      .def_readwrite("models", &RenderSpec::models)
      .def_readwrite("camera_ids", &RenderSpec::camera_ids)
      .def_readwrite("task_of_env", &RenderSpec::task_of_env)
      .def_readwrite("datas", &RenderSpec::datas)
      .def_readwrite("height", &RenderSpec::height)
      .def_readwrite("width", &RenderSpec::width)
      .def_readwrite("bottom_up", &RenderSpec::bottom_up)
      .def_readwrite("geom_groups", &RenderSpec::geom_groups);
  py::class_<PyBatchRenderer>(m, "BatchRenderer")
      .def(py::init<RenderSpec, const std::vector<py::array>&, const py::array&, int>(), py::arg("spec"),
           py::arg("images"), py::arg("current"), py::arg("slots"),
           "Up to `slots` GL contexts (one per thread that may draw at once; envs dealt to them by task; 0: "
           "default_slots()) with MuJoCo's render contexts of their envs' tasks; raises GlError if the GL stack is "
           "missing or broken")
      .def("render", &PyBatchRenderer::render, py::arg("rows"), py::arg("cameras"),
           "Draw the non-current frames of envs `rows` from the cameras flagged in `cameras` into the images")
      .def("close", &PyBatchRenderer::close, "Free the GL and render contexts (render then raises)")
      .def_property_readonly("slots", &PyBatchRenderer::slots, "How many GL contexts it draws with");
}

}  // namespace ript
