#include "render/egl.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

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

// What to do about a missing or broken stack, appended to every setup error.
constexpr const char* kHint =
    " Image observations render with EGL (MUJOCO_GL unset or MUJOCO_GL=egl). On Debian/Ubuntu install the "
    "system packages libegl1 libegl-mesa0 libgl1-mesa-dri (software rendering), or your GPU driver's EGL; "
    "MUJOCO_EGL_DEVICE_ID picks a device.";

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
bool resolve(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

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
  // On Mesa's software rasterizer a display of the engine's own (see egl.h), else each candidate device's.
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
    open_display(lib);
  }
  return lib;
}

// The process's EGL, loaded on first use; GlError (the same message every time) if it cannot be used.
const Library& egl() {
  static const Library lib = load();
  if (!lib.error.empty()) throw GlError("OpenGL (EGL) is not usable: " + lib.error + kHint);
  return lib;
}

}  // namespace

std::string display_platform() { return egl().platform; }

std::unique_lock<std::mutex> gl_turn() {
  static std::mutex lock;
  if (egl().software) return std::unique_lock<std::mutex>(lock);
  return std::unique_lock<std::mutex>(lock, std::defer_lock);
}

CurrentBinding::CurrentBinding() {
  const Library& lib = egl();
  display_ = lib.GetCurrentDisplay();
  draw_ = lib.GetCurrentSurface(kDraw);
  read_ = lib.GetCurrentSurface(kRead);
  context_ = lib.GetCurrentContext();
  api_ = lib.QueryAPI();
  lib.BindAPI(kOpenglApi);  // the thread's API decides which of its contexts make/release current act on
}

CurrentBinding::~CurrentBinding() {
  const Library& lib = egl();
  // The caller's context cannot be restored when it was destroyed meanwhile: another thread destroyed it while
  // it was current here (a collector running a Python GL context's finalizer; EGL defers that until it is
  // released, which making ours current did). Then release instead of keeping ours current on this thread:
  // Python code run here later frees MuJoCo render contexts in whatever context is current (MjrContext's
  // destructor, robosuite's finalizer), which would delete the GL objects of ours that share their names.
  if (context_ == nullptr || !lib.MakeCurrent(display_, draw_, read_, context_)) {
    lib.MakeCurrent(lib.display, nullptr, nullptr, nullptr);
  }
  lib.BindAPI(api_);
}

EglContext::EglContext() {
  const Library& lib = egl();
  CurrentBinding keep;  // eglBindAPI is per thread: bind OpenGL for the creation, then put the caller's back
  context_ = lib.CreateContext(lib.display, lib.config, nullptr, nullptr);
  if (context_ == nullptr) {
    throw GlError("OpenGL (EGL) is not usable: eglCreateContext failed (EGL error " + hex(lib.GetError()) + ")." +
                  kHint);
  }
}

EglContext::~EglContext() {
  if (context_ != nullptr) egl().DestroyContext(egl().display, context_);
}

bool EglContext::make_current() const { return egl().MakeCurrent(egl().display, nullptr, nullptr, context_) != 0; }

std::string EglContext::last_error() {
  const EGLint code = egl().GetError();
  return code == kSuccess ? "no EGL error" : "EGL error " + hex(code);
}

}  // namespace ript::render
