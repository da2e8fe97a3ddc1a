// Headless OpenGL contexts through EGL, loaded at run time.
//
// Why dlopen rather than linking libEGL: the module must import (and state envs must run) on machines without
// any GL stack; only an image env needs one, and there a missing or broken stack must be one clear exception
// when the env is made (naming MUJOCO_GL and the system package), never an import failure or a crash later
// in a worker thread. So every EGL call goes through pointers resolved here, and every failure of the setup
// (no library, no device, no config, no context) is a GlError thrown on the thread that asked for a context.
//
// The display is EGL's device platform on the first usable device (or MUJOCO_EGL_DEVICE_ID), as MuJoCo's
// Python `mujoco.egl` picks it, except on a machine whose only devices are Mesa's software rasterizer: there
// the engine takes a display of its own on Mesa's surfaceless platform (same driver, same pixels). Each EGL
// display is its own llvmpipe screen, so other libraries' contexts (mujoco.egl's, robosuite's: the device
// display) drawing on other threads stay off the screen whose GL the engine serializes (gl_turn).
// Contexts are surfaceless (MuJoCo renders into its own offscreen framebuffer). A context may be made current on
// any thread, one thread at a time; EGL's current-context state (and the client API) is per thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

namespace ript::render {

// The setup of a GL context failed; the message says what failed and what to install or set.
class GlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The thread's current EGL binding (display, draw/read surfaces, context, client API), taken on construction
// and put back on destruction: a render call made on the Python thread must leave whatever context the caller
// had current (e.g. a mujoco.Renderer's) as it was. If that context is gone by then, none is left current:
// never one of the engine's, which is current only inside an engine call.
class CurrentBinding {
 public:
  CurrentBinding();
  ~CurrentBinding();
  CurrentBinding(const CurrentBinding&) = delete;
  CurrentBinding& operator=(const CurrentBinding&) = delete;

 private:
  void* display_;
  void* draw_;
  void* read_;
  void* context_;
  uint32_t api_;
};

// The EGL platform of the engine's display: "surfaceless" (Mesa's, on a machine whose only devices are Mesa's
// software rasterizer) or "device"; GlError where EGL is not usable.
std::string display_platform();

// The engine's turn at GL, taken around every GL call it makes (making, binding and freeing contexts; drawing
// and reading a frame). On Mesa's software rasterizer it is one lock, so the engine's contexts never run GL at
// the same time: two contexts drawing at once on one llvmpipe screen crash inside Mesa 22.3 now and then
// (SIGSEGV in a draw, about once in 5-10 minutes of two threads drawing LIBERO frames; scripts/render_stress.py).
// On a GPU's EGL it is an empty lock: the slots' contexts draw at once. MuJoCo's CPU side of a frame (placing
// cameras, building the scene) runs outside it, in parallel. GlError where EGL is not usable.
std::unique_lock<std::mutex> gl_turn();

// One OpenGL (compatibility profile) context on the engine's display.
class EglContext {
 public:
  EglContext();  // throws GlError
  ~EglContext();
  EglContext(const EglContext&) = delete;
  EglContext& operator=(const EglContext&) = delete;

  // Makes this context current on the calling thread (which must not hold it elsewhere); false if EGL refused
  // (e.g. the display was terminated by another library's exit hook).
  bool make_current() const;
  // EGL's last error on this thread, as text (e.g. "EGL_BAD_ACCESS (0x3002)").
  static std::string last_error();

 private:
  void* context_ = nullptr;
};

}  // namespace ript::render
