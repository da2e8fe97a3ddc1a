// Headless OpenGL contexts for the engine's renderer: EGL, or Mesa's OSMesa where MUJOCO_GL=osmesa asks for it
// or where EGL is not usable and MUJOCO_GL does not ask for EGL (gl_backend.h has the two).
//
// Why loaded at run time: the module must import (and state envs must run) on machines without any GL stack;
// only an image env needs one, and there a missing or broken stack must be one clear exception when the env is
// made (naming MUJOCO_GL and the system package), never an import failure or a crash later in a worker thread.
// So every failure of the setup (no library, no device, no config, no context) is a GlError thrown on the
// thread that asked for a context.
//
// A context may be made current on any thread, one thread at a time. Contexts render into MuJoCo's own offscreen
// framebuffer: EGL's are surfaceless; OSMesa's are bound to a few pixels of their own that nothing reads.
#pragma once

#include <mutex>
#include <stdexcept>
#include <string>

#include "render/gl_backend.h"

namespace ript::render {

// The setup of a GL context failed; the message says what failed and what to install or set.
class GlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The thread's current GL binding, taken on construction and put back on destruction: a render call made on the
// Python thread must not leave one of the engine's contexts current there (Python code freeing a MuJoCo render
// context on that thread later would delete the engine's GL objects, which share the names). EGL puts back the
// caller's context, or none if that one is gone by then; OSMesa leaves none current (it cannot tell a destroyed
// context from a live one; MuJoCo's and robosuite's Python renderers make theirs current before each draw).
class CurrentBinding {
 public:
  CurrentBinding();
  ~CurrentBinding();
  CurrentBinding(const CurrentBinding&) = delete;
  CurrentBinding& operator=(const CurrentBinding&) = delete;

 private:
  Binding saved_;
};

// Where the engine draws: "surfaceless" (EGL, its own display on Mesa's software rasterizer), "device" (EGL on
// a device display, as mujoco.egl picks it) or "osmesa"; GlError where no backend is usable.
std::string gl_platform();

// Whether the engine draws on Mesa's software rasterizer (llvmpipe: EGL without a GPU driver, and OSMesa), whose
// GL it serializes (gl_turn); GlError where no backend is usable.
bool gl_software();

// The engine's turn at GL, taken around every GL call it makes (making, binding and freeing contexts; drawing
// and reading a frame). On Mesa's software rasterizer (llvmpipe: EGL without a GPU driver, and OSMesa) it is one
// lock, so the engine's contexts never run GL at the same time: two contexts drawing at once on one llvmpipe
// screen crash inside Mesa 22.3 now and then (SIGSEGV in a draw, about once in 5-10 minutes of two threads
// drawing LIBERO frames; scripts/render_stress.py). On a GPU's EGL it is an empty lock: the slots' contexts draw
// at once. MuJoCo's CPU side of a frame (placing cameras, building the scene) runs outside it, in parallel.
// GlError where no backend is usable.
std::unique_lock<std::mutex> gl_turn();

// One OpenGL (compatibility profile) context of the process's backend.
class GlContext {
 public:
  GlContext();  // throws GlError
  ~GlContext();
  GlContext(const GlContext&) = delete;
  GlContext& operator=(const GlContext&) = delete;

  // Makes this context current on the calling thread (which must not hold it elsewhere); false if the library
  // refused (e.g. the EGL display was terminated by another library's exit hook).
  bool make_current() const;
  // The backend's last error on this thread, as text (e.g. "EGL error 0x3002").
  static std::string last_error();

 private:
  void* context_ = nullptr;
};

}  // namespace ript::render
