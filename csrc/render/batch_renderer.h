// Offscreen RGB rendering of a batch of MuJoCo simulations on the core's thread pool, GIL released.
//
// Why in C++: a CPU rasteriser (Mesa's llvmpipe) spends most of a small frame in per-draw work on the thread
// that issues it, so one GL context driven from Python renders one frame at a time on one core. Here the batch
// is split into "slots", one per pool thread that may draw at once: a slot is a GL context (EGL or OSMesa) with
// MuJoCo's render context (meshes and textures uploaded) and a scene for each task among its envs. Envs are
// dealt to slots once, sorted by task in contiguous runs, so the slots hold about tasks + slots render contexts
// in all (not tasks x slots: a LIBERO task's textures are ~390 MB per context). In a render call each slot runs
// on a pool thread and claims, one at a time, the stale envs of the tasks it holds: the slots sharing a task (all
// of them in a one-task batch) balance its envs between them, so a thread the OS delays leaves its share to
// the others. On Mesa's software rasterizer the slots take turns at GL (gl.h's gl_turn: llvmpipe crashed with
// two contexts drawing at once); their MuJoCo work (cameras, scene building) still runs in parallel.
//
// A frame is MuJoCo's own pipeline, as mujoco.Renderer runs it: mj_camlight with the render model (whose
// cameras the caller may have moved), mjv_updateScene from a fixed camera, mjr_render into the offscreen
// buffer, mjr_readPixels straight into the caller's (N, H, W, 3) uint8 array, rows bottom-up as OpenGL gives
// them (or flipped to top-down). The render models are the caller's (read only here) and each env's mjData
// is written only by mj_camlight (camera and light frames), by the one thread drawing that env.
#pragma once

#include <mujoco/mujoco.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "render/gl.h"

namespace ript::render {

struct RenderSpec {
  std::vector<uintptr_t> models;                 // per task: the render mjModel's address
  std::vector<std::vector<int32_t>> camera_ids;  // per task, per camera: the fixed camera's id in that model
  std::vector<int32_t> task_of_env;              // (N,) index into models
  std::vector<uintptr_t> datas;                  // (N,) each env's mjData address
  int32_t height = 128, width = 128;
  bool bottom_up = true;  // keep OpenGL's row order (QueST's and LIBERO's convention); false: top-down
  // The geom groups drawn (mjNGROUP flags, mjvOption.geomgroup): LIBERO's renderer hides group 0 (collision).
  std::vector<uint8_t> geom_groups = {1, 1, 1, 0, 0, 0};
};

// The caller's buffers, written in place: images[c] is camera c's (N, height, width, 3) C-contiguous uint8
// array; current is an (N, cameras) C-contiguous bool array, true where a frame shows its env's present state.
struct RenderOutputs {
  std::vector<uint8_t*> images;
  bool* current = nullptr;
};

class BatchRenderer {
 public:
  // Makes min(slots, N) GL contexts and their render contexts on the calling thread; GlError if the GL stack
  // or MuJoCo's render setup fails (nothing is left allocated then). slots <= 0: default_slots().
  BatchRenderer(RenderSpec spec, RenderOutputs out, int slots);
  ~BatchRenderer();
  BatchRenderer(const BatchRenderer&) = delete;
  BatchRenderer& operator=(const BatchRenderer&) = delete;

  // One slot on Mesa's software rasterizer, whose GL takes turns (gl_turn): more contexts there draw no faster
  // (1 vs 2 slots within 4% on 2 cores, bench/RESULTS.md) and each holds its tasks' textures; on a GPU's EGL, one
  // per pool thread. Makes the process's GL backend choice (gl.h) if none was made yet.
  static int default_slots();

  int64_t size() const { return static_cast<int64_t>(spec_.datas.size()); }
  int64_t slots() const { return static_cast<int64_t>(slots_.size()); }
  int64_t cameras() const { return static_cast<int64_t>(out_.images.size()); }

  // Draws, for each env in rows[0..n) (duplicates allowed), every camera c with wanted[c] whose frame is not
  // current, the slots in parallel, and marks them current. std::out_of_range for an env id outside [0, N);
  // std::runtime_error if GL or MuJoCo fail while drawing (frames drawn before stay valid). Calls on one
  // renderer are serialized (a slot's context may be current on one thread only).
  void render(const int64_t* rows, int64_t n, const bool* wanted);

 private:
  class Slot;
  struct TaskQueue;
  std::vector<TaskQueue> stale_envs_by_task(const int64_t* rows, int64_t n, const bool* wanted) const;
  void draw_slot(Slot& slot, std::vector<TaskQueue>& queues, const bool* wanted);
  void draw_env(Slot& slot, int64_t env, const bool* wanted);

  RenderSpec spec_;
  mjvOption option_;  // MuJoCo's defaults with spec_.geom_groups
  RenderOutputs out_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex calls_;
};

}  // namespace ript::render
