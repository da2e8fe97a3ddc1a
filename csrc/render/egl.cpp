// The EGL backend (gl_backend.h): EGL's device platform on the first usable device (or MUJOCO_EGL_DEVICE_ID), as
// MuJoCo's Python `mujoco.egl` picks it, except on a machine whose only devices are Mesa's software rasterizer:
// there the engine takes a display of its own on Mesa's surfaceless platform (same driver, same pixels). Each
// EGL display is its own llvmpipe screen, so other libraries' contexts (mujoco.egl's, robosuite's: the device
// display) drawing on other threads stay off the screen whose GL the engine serializes (gl.h's gl_turn).
// EGL's current-context state (and the client API) is per thread.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "render/gl_backend.h"

namespace ript::render {
namespace {

// The few EGL types and enum values used here (numbers from the EGL 1.5 specification and the
// EGL_EXT_platform_device extension), so that building needs no EGL headers either.
using EGLint = int32_t;
using EGLenum = uint32_t;
using EGLBoolean = uint32_t;
using Handle = void*;  // EGLDisplay, EGLConfig, EGLContext, EGLSurface, EGLDeviceEXT

constexpr EGLint kSuccess = 0x3000;
constexpr EGLint kNone = 0x3038;
constexpr EGLint kRedSize = 0x3024, kGreenSize = 0x3023, kBlueSize = 0x3022, kAlphaSize = 0x3021;
constexpr EGLint kDepthSize = 0x3025, kStencilSize = 0x3026;
constexpr EGLint kColorBufferType = 0x303F, kRgbBuffer = 0x308E;
constexpr EGLint kSurfaceType = 0x3033, kPbufferBit = 0x0001;
constexpr EGLint kRenderableType = 0x3040, kOpenglBit = 0x0008;
constexpr EGLint kDraw = 0x3059, kRead = 0x305A;
constexpr EGLenum kOpenglApi = 0x30A2;
constexpr EGLenum kPlatformDeviceExt = 0x313F;
constexpr EGLenum kPlatformSurfacelessMesa = 0x31DD;
constexpr EGLint kExtensions = 0x3055;

struct Library {
  void* handle = nullptr;
  void* (*GetProcAddress)(const char*) = nullptr;
  EGLint (*GetError)() = nullptr;
  EGLBoolean (*Initialize)(Handle, EGLint*, EGLint*) = nullptr;
  EGLBoolean (*ChooseConfig)(Handle, const EGLint*, Handle*, EGLint, EGLint*) = nullptr;
  EGLBoolean (*BindAPI)(EGLenum) = nullptr;
  EGLenum (*QueryAPI)() = nullptr;
  Handle (*CreateContext)(Handle, Handle, Handle, const EGLint*) = nullptr;
  EGLBoolean (*DestroyContext)(Handle, Handle) = nullptr;
  EGLBoolean (*MakeCurrent)(Handle, Handle, Handle, Handle) = nullptr;
  Handle (*GetCurrentContext)() = nullptr;
  Handle (*GetCurrentDisplay)() = nullptr;
  Handle (*GetCurrentSurface)(EGLint) = nullptr;
  const char* (*QueryString)(Handle, EGLint) = nullptr;
  EGLBoolean (*QueryDevices)(EGLint, Handle*, EGLint*) = nullptr;
  const char* (*QueryDeviceString)(Handle, EGLint) = nullptr;
  Handle (*GetPlatformDisplay)(EGLenum, Handle, const EGLint*) = nullptr;
  Handle display = nullptr;
  const char* platform = "";  // which EGL platform the display is on: "surfaceless" or "device"
  bool software = false;      // every device is Mesa's software rasterizer (llvmpipe)
  Handle config = nullptr;
  std::string error;  // set when loading failed: every later request fails with the same message
};

template <typename Fn>
bool resolve_extension(const Library& lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(lib.GetProcAddress(name));
  return fn != nullptr;
}

std::string hex(EGLint code) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%04X", static_cast<unsigned>(code));
  return buffer;
}

bool load_symbols(Library& lib) {
  return resolve(lib.handle, "eglGetProcAddress", lib.GetProcAddress) &&
         resolve(lib.handle, "eglGetError", lib.GetError) && resolve(lib.handle, "eglInitialize", lib.Initialize) &&
         resolve(lib.handle, "eglChooseConfig", lib.ChooseConfig) &&
         resolve(lib.handle, "eglBindAPI", lib.BindAPI) && resolve(lib.handle, "eglQueryAPI", lib.QueryAPI) &&
         resolve(lib.handle, "eglCreateContext", lib.CreateContext) &&
         resolve(lib.handle, "eglDestroyContext", lib.DestroyContext) &&
         resolve(lib.handle, "eglMakeCurrent", lib.MakeCurrent) &&
         resolve(lib.handle, "eglGetCurrentContext", lib.GetCurrentContext) &&
         resolve(lib.handle, "eglGetCurrentDisplay", lib.GetCurrentDisplay) &&
         resolve(lib.handle, "eglGetCurrentSurface", lib.GetCurrentSurface) &&
         resolve(lib.handle, "eglQueryString", lib.QueryString);
}

// Whether a space-separated EGL extension string names `name`.
bool has_extension(const char* extensions, const std::string& name) {
  if (extensions == nullptr) return false;
  const std::string all = std::string(" ") + extensions + " ";
  return all.find(" " + name + " ") != std::string::npos;
}

// Every device EGL reports (none when it reports none).
std::vector<Handle> all_devices(const Library& lib) {
  EGLint count = 0;
  if (!lib.QueryDevices(0, nullptr, &count) || count < 1) return {};
  std::vector<Handle> devices(static_cast<size_t>(count));
  lib.QueryDevices(count, devices.data(), &count);
  devices.resize(static_cast<size_t>(count));
  return devices;
}

// Whether all `devices` are Mesa's software rasterizer (a machine without a GPU driver's EGL).
bool only_software(const Library& lib, const std::vector<Handle>& devices) {
  if (lib.QueryDeviceString == nullptr || devices.empty()) return false;
  for (Handle device : devices) {
    if (!has_extension(lib.QueryDeviceString(device, kExtensions), "EGL_MESA_device_software")) return false;
  }
  return true;
}

// `devices` narrowed to MUJOCO_EGL_DEVICE_ID when set (as mujoco.egl reads it).
std::vector<Handle> candidate_devices(const std::vector<Handle>& devices, std::string& error) {
  if (devices.empty()) {
    error = "EGL reports no device: libEGL is there but no vendor library drives a device.";
    return {};
  }
  const char* chosen = std::getenv("MUJOCO_EGL_DEVICE_ID");
  if (chosen == nullptr || *chosen == '\0') return devices;
  char* end = nullptr;
  const long index = std::strtol(chosen, &end, 10);
  const long count = static_cast<long>(devices.size());
  if (*end != '\0' || index < 0 || index >= count) {
    error = "MUJOCO_EGL_DEVICE_ID must be an integer between 0 and " + std::to_string(count - 1) + ", got '" +
            chosen + "'.";
    return {};
  }
  return {devices[static_cast<size_t>(index)]};
}

// The first candidate device whose display initializes, and a config as mujoco.egl asks for one.
bool open_display(Library& lib) {
  const std::vector<Handle> devices = all_devices(lib);
  lib.software = only_software(lib, devices);
  // On Mesa's software rasterizer a display of the engine's own (see above), else each candidate device's.
  const bool own_display =
      lib.software && has_extension(lib.QueryString(nullptr, kExtensions), "EGL_MESA_platform_surfaceless");
  lib.platform = own_display ? "surfaceless" : "device";
  for (Handle device : candidate_devices(devices, lib.error)) {
    Handle display = own_display ? lib.GetPlatformDisplay(kPlatformSurfacelessMesa, nullptr, nullptr)
                                 : lib.GetPlatformDisplay(kPlatformDeviceExt, device, nullptr);
    if (display != nullptr && lib.Initialize(display, nullptr, nullptr)) {
      lib.display = display;
      break;
    }
  }
  if (lib.display == nullptr) {
    if (lib.error.empty()) {
      lib.error = "no EGL device display could be initialized (EGL error " + hex(lib.GetError()) + ").";
    }
    return false;
  }
  const EGLint attributes[] = {kRedSize,    8,          kGreenSize,   8,         kBlueSize,       8,
                               kAlphaSize,  8,          kDepthSize,   24,        kStencilSize,    8,
                               kColorBufferType, kRgbBuffer, kSurfaceType, kPbufferBit, kRenderableType, kOpenglBit,
                               kNone};
  EGLint found = 0;
  if (!lib.ChooseConfig(lib.display, attributes, &lib.config, 1, &found) || found < 1) {
    lib.error = "EGL has no RGBA8/depth24/stencil8 desktop-OpenGL config on this device.";
    return false;
  }
  return true;
}

Library load() {
  Library lib;
  // Local until it works: a libEGL without a usable device must not be the one MuJoCo's GL loader finds.
  lib.handle = dlopen("libEGL.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib.handle == nullptr) {
    const char* why = dlerror();
    lib.error = std::string("could not load libEGL.so.1 (") + (why != nullptr ? why : "not found") + ").";
  } else if (!load_symbols(lib)) {
    lib.error = "libEGL.so.1 lacks a core EGL 1.4 function.";
  } else if (!resolve_extension(lib, "eglQueryDevicesEXT", lib.QueryDevices) ||
             !resolve_extension(lib, "eglGetPlatformDisplayEXT", lib.GetPlatformDisplay)) {
    lib.error = "EGL lacks the device extensions (EGL_EXT_device_enumeration, EGL_EXT_platform_device).";
  } else {
    resolve_extension(lib, "eglQueryDeviceStringEXT", lib.QueryDeviceString);  // optional: GPU drivers may lack it
    // Usable: made global, where MuJoCo's GL loader looks for eglGetProcAddress (gl_backend.h).
    if (open_display(lib)) dlopen("libEGL.so.1", RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  }
  return lib;
}

class EglBackend final : public GlBackend {
 public:
  explicit EglBackend(const Library& lib) : lib_(lib) {}

  const char* name() const override { return "EGL"; }
  const char* platform() const override { return lib_.platform; }
  bool software() const override { return lib_.software; }

  void* create_context() const override {
    const EGLenum api = lib_.QueryAPI();  // eglBindAPI is per thread: OpenGL for the creation, then the caller's
    lib_.BindAPI(kOpenglApi);
    void* context = lib_.CreateContext(lib_.display, lib_.config, nullptr, nullptr);
    lib_.BindAPI(api);
    return context;
  }

  void destroy_context(void* context) const override { lib_.DestroyContext(lib_.display, context); }

  bool make_current(void* context) const override {
    return lib_.MakeCurrent(lib_.display, nullptr, nullptr, context) != 0;
  }

  std::string last_error() const override {
    const EGLint code = lib_.GetError();
    return code == kSuccess ? "no EGL error" : "EGL error " + hex(code);
  }

  // Also binds OpenGL as the thread's client API: it decides which of the thread's contexts make/release act on.
  Binding current() const override {
    Binding b{lib_.GetCurrentDisplay(), lib_.GetCurrentSurface(kDraw), lib_.GetCurrentSurface(kRead),
              lib_.GetCurrentContext(), lib_.QueryAPI()};
    lib_.BindAPI(kOpenglApi);
    return b;
  }

  // The caller's context cannot be restored when it was destroyed meanwhile: another thread destroyed it while
  // it was current here (a collector running a Python GL context's finalizer; EGL defers that until it is
  // released, which making ours current did). Then release instead of keeping ours current on this thread.
  void restore(const Binding& b) const override {
    if (b.context == nullptr || !lib_.MakeCurrent(b.display, b.draw, b.read, b.context)) {
      lib_.MakeCurrent(lib_.display, nullptr, nullptr, nullptr);
    }
    lib_.BindAPI(b.api);
  }

 private:
  const Library& lib_;
};

}  // namespace

const GlBackend* egl_backend(std::string& why) {
  static const Library lib = load();
  static const EglBackend backend(lib);
  why = lib.error;
  return lib.error.empty() ? &backend : nullptr;
}

}  // namespace ript::render
