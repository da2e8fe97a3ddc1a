// The two ways the engine makes offscreen OpenGL contexts, behind one interface (gl.cpp picks one per process):
// EGL (egl.cpp) and Mesa's OSMesa (osmesa.cpp). Each library is loaded at run time (dlopen), so the module
// imports and state envs run on machines with neither; a backend that cannot be used says why in one sentence.
//
// Each is made global (RTLD_GLOBAL) once usable: MuJoCo's GL loader (mjr_makeContext) looks up eglGetProcAddress,
// then OSMesaGetProcAddress, in the process's global symbols, once per process; the engine's contexts must be
// of the kind whose functions it found.
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <string>

namespace ript::render {

// A thread's current GL binding, as a backend saves it (EGL: display, surfaces, context, client API).
struct Binding {
  void* display = nullptr;
  void* draw = nullptr;
  void* read = nullptr;
  void* context = nullptr;
  uint32_t api = 0;
};

class GlBackend {
 public:
  virtual ~GlBackend() = default;
  // "EGL" or "OSMesa", for messages.
  virtual const char* name() const = 0;
  // "device" or "surfaceless" (EGL's display platform) or "osmesa".
  virtual const char* platform() const = 0;
  // Whether the contexts are Mesa's software rasterizer (llvmpipe), whose GL the engine serializes (gl.h).
  virtual bool software() const = 0;
  // A new context (desktop OpenGL, RGBA8, depth 24, stencil 8), or nullptr (then last_error() says why).
  virtual void* create_context() const = 0;
  virtual void destroy_context(void* context) const = 0;
  // Makes `context` current on the calling thread; false if the library refused.
  virtual bool make_current(void* context) const = 0;
  virtual std::string last_error() const = 0;
  // The calling thread's binding; `restore` puts it back, or leaves no context current where it cannot.
  virtual Binding current() const = 0;
  virtual void restore(const Binding& binding) const = 0;
};

// `fn` set to the library's function `name`; false where the library lacks it.
template <typename Fn>
bool resolve(void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  return fn != nullptr;
}

// The process's EGL or OSMesa backend, loaded on first use; nullptr and `why` (one sentence) if unusable.
const GlBackend* egl_backend(std::string& why);
const GlBackend* osmesa_backend(std::string& why);

}  // namespace ript::render
