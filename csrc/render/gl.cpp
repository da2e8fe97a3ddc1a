#include "render/gl.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

namespace ript::render {
namespace {

// What to do about a missing or broken stack, appended to every setup error.
constexpr const char* kHint =
    " Image observations render with EGL (MUJOCO_GL unset or MUJOCO_GL=egl) or OSMesa (MUJOCO_GL=osmesa). On "
    "Debian/Ubuntu install the system packages libegl1 libegl-mesa0 libgl1-mesa-dri (EGL, software rendering) or "
    "libosmesa6 (OSMesa), or your GPU driver's EGL; MUJOCO_EGL_DEVICE_ID picks an EGL device.";

struct Choice {
  const GlBackend* backend = nullptr;
  std::string error;
};

std::string mujoco_gl() {
  const char* value = std::getenv("MUJOCO_GL");
  std::string text = value != nullptr ? value : "";
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// MUJOCO_GL=osmesa: OSMesa; =egl (or MUJOCO_EGL_DEVICE_ID set): EGL; otherwise (unset, or "disable" as LIBERO's
// setup may leave it) EGL where it is usable, else OSMesa. The process keeps its choice: MuJoCo loads its GL
// functions once.
Choice choose() {
  const char* device = std::getenv("MUJOCO_EGL_DEVICE_ID");
  std::string asked = mujoco_gl();
  if (asked.empty() && device != nullptr && *device != '\0') asked = "egl";
  std::string egl_why, osmesa_why;
  if (asked == "osmesa") {
    if (const GlBackend* osmesa = osmesa_backend(osmesa_why)) return {osmesa, ""};
    return {nullptr, "OpenGL (OSMesa, as MUJOCO_GL=osmesa asks) is not usable: " + osmesa_why + kHint};
  }
  if (const GlBackend* egl = egl_backend(egl_why)) return {egl, ""};
  if (asked == "egl") return {nullptr, "OpenGL (EGL) is not usable: " + egl_why + kHint};
  if (const GlBackend* osmesa = osmesa_backend(osmesa_why)) return {osmesa, ""};
  return {nullptr, "OpenGL is not usable: EGL: " + egl_why + " OSMesa: " + osmesa_why + kHint};
}

// The process's backend; GlError (the same message every time) if none is usable.
const GlBackend& backend() {
  static const Choice choice = choose();
  if (choice.backend == nullptr) throw GlError(choice.error);
  return *choice.backend;
}

}  // namespace

std::string gl_platform() { return backend().platform(); }

bool gl_software() { return backend().software(); }

std::unique_lock<std::mutex> gl_turn() {
  static std::mutex lock;
  if (gl_software()) return std::unique_lock<std::mutex>(lock);
  return std::unique_lock<std::mutex>(lock, std::defer_lock);
}

CurrentBinding::CurrentBinding() : saved_(backend().current()) {}

CurrentBinding::~CurrentBinding() { backend().restore(saved_); }

GlContext::GlContext() {
  const GlBackend& gl = backend();
  context_ = gl.create_context();
  if (context_ == nullptr) {
    throw GlError(std::string("OpenGL (") + gl.name() + ") is not usable: making a context failed (" +
                  gl.last_error() + ")." + kHint);
  }
}

GlContext::~GlContext() {
  if (context_ != nullptr) backend().destroy_context(context_);
}

bool GlContext::make_current() const { return backend().make_current(context_); }

std::string GlContext::last_error() { return backend().last_error(); }

}  // namespace ript::render
