// The OSMesa backend (gl_backend.h): Mesa's off-screen contexts, for machines without EGL (MUJOCO_GL=osmesa, as
// MuJoCo's Python `mujoco.osmesa` uses them; Debian/Ubuntu package libosmesa6). The contexts are made as
// mujoco.osmesa makes its own (RGBA, depth 24, stencil 8, no accumulation buffer), so the engine's frames are
// the Python renderer's. OSMesa is Mesa's software rasterizer (llvmpipe), so the engine serializes its GL.
#include <dlfcn.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "render/gl_backend.h"

namespace ript::render {
namespace {

// The few OSMesa/GL types and enum values used here (numbers from GL/osmesa.h and GL/gl.h), so that building
// needs no GL headers.
using OSMesaContext = void*;
using GLenum = uint32_t;
using GLint = int32_t;
using GLboolean = uint8_t;
constexpr GLenum kRgba = 0x1908;          // OSMESA_RGBA (= GL_RGBA)
constexpr GLenum kUnsignedByte = 0x1401;  // GL_UNSIGNED_BYTE
constexpr GLint kDepthBits = 24, kStencilBits = 8, kAccumBits = 0;
constexpr int kSide = 4;  // the context's own color buffer, kSide x kSide: MuJoCo draws into its framebuffer object

struct Library {
  void* handle = nullptr;
  OSMesaContext (*CreateContextExt)(GLenum, GLint, GLint, GLint, OSMesaContext) = nullptr;
  void (*DestroyContext)(OSMesaContext) = nullptr;
  GLboolean (*MakeCurrent)(OSMesaContext, void*, GLenum, GLint, GLint) = nullptr;
  std::string error;  // set when loading failed
};

Library load() {
  Library lib;
  // MuJoCo's GL loader looks up eglGetProcAddress before OSMesaGetProcAddress (gl_backend.h): where another
  // library put a libEGL among the process's global symbols, MuJoCo would draw OSMesa contexts with EGL's
  // functions (blank frames or a crash), so refuse.
  if (dlsym(RTLD_DEFAULT, "eglGetProcAddress") != nullptr) {
    lib.error = "this process already has EGL loaded (another library made EGL contexts), and MuJoCo then takes "
                "its GL functions from EGL, not OSMesa.";
    return lib;
  }
  // RTLD_GLOBAL: MuJoCo's GL loader finds OSMesaGetProcAddress among the process's global symbols.
  for (const char* name : {"libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"}) {
    lib.handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (lib.handle != nullptr) break;
  }
  if (lib.handle == nullptr) {
    const char* why = dlerror();
    lib.error = std::string("could not load libOSMesa.so.8 (") + (why != nullptr ? why : "not found") + ").";
  } else if (!resolve(lib.handle, "OSMesaCreateContextExt", lib.CreateContextExt) ||
             !resolve(lib.handle, "OSMesaDestroyContext", lib.DestroyContext) ||
             !resolve(lib.handle, "OSMesaMakeCurrent", lib.MakeCurrent) ||
             dlsym(lib.handle, "OSMesaGetProcAddress") == nullptr) {
    lib.error = "libOSMesa lacks an OSMesa function (OSMesaCreateContextExt, OSMesaMakeCurrent, ...).";
  }
  return lib;
}

// An OSMesa context and the few pixels it is bound to (OSMesa binds a context to a caller's color buffer).
struct Context {
  OSMesaContext context = nullptr;
  std::array<uint8_t, kSide * kSide * 4> pixels{};
};

class OsMesaBackend final : public GlBackend {
 public:
  explicit OsMesaBackend(const Library& lib) : lib_(lib) {}

  const char* name() const override { return "OSMesa"; }
  const char* platform() const override { return "osmesa"; }
  bool software() const override { return true; }

  void* create_context() const override {
    auto context = std::make_unique<Context>();
    context->context = lib_.CreateContextExt(kRgba, kDepthBits, kStencilBits, kAccumBits, nullptr);
    return context->context == nullptr ? nullptr : context.release();
  }

  void destroy_context(void* context) const override {
    const std::unique_ptr<Context> owned(static_cast<Context*>(context));
    lib_.DestroyContext(owned->context);
  }

  bool make_current(void* context) const override {
    auto* c = static_cast<Context*>(context);
    return lib_.MakeCurrent(c->context, c->pixels.data(), kUnsignedByte, kSide, kSide) != 0;
  }

  std::string last_error() const override { return "OSMesa refused (it reports no error code)"; }

  Binding current() const override { return {}; }

  // No context left current (see gl.h's CurrentBinding): OSMesa's release is a null context and buffer.
  void restore(const Binding&) const override { lib_.MakeCurrent(nullptr, nullptr, kUnsignedByte, 0, 0); }

 private:
  const Library& lib_;
};

}  // namespace

const GlBackend* osmesa_backend(std::string& why) {
  static const Library lib = load();
  static const OsMesaBackend backend(lib);
  why = lib.error;
  return lib.error.empty() ? &backend : nullptr;
}

}  // namespace ript::render
