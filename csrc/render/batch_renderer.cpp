#include "render/batch_renderer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/thread_pool.h"
#include "sim/guarded.h"

namespace ript::render {
namespace {

constexpr int kMaxGeom = 1000;  // scene capacity (as the Python renderer had it): MetaWorld and LIBERO draw fewer

// MuJoCo raises setup and drawing failures through mju_error, whose default handler exits the process; these
// bodies run under sim::call_trapped, which turns that into a message. Only plain data may live inside them.
struct TaskSetup {
  const mjModel* model;
  mjvScene* scene;
  mjrContext* context;
};

void make_task_context(void* p) {
  const TaskSetup* a = static_cast<const TaskSetup*>(p);
  mjv_makeScene(a->model, a->scene, kMaxGeom);
  a->scene->flags[mjRND_SHADOW] = 0;  // the light profile: shadows and reflections cost most on a CPU
  a->scene->flags[mjRND_REFLECTION] = 0;
  mjr_makeContext(a->model, a->context, mjFONTSCALE_150);
  mjr_setBuffer(mjFB_OFFSCREEN, a->context);
}

// One camera's frame of one env. Placing the camera and light frames and building the scene is MuJoCo's CPU
// work (no GL), done by the slots in parallel; drawing the scene and reading it back is GL, done under the
// engine's GL lock (see gl.h).
struct CameraFrame {
  const mjModel* model;
  mjData* data;
  mjvScene* scene;
  const mjrContext* context;
  const mjvOption* option;
  int camera_id;
  uint8_t* target;  // (height, width, 3) rows bottom-up
  int height, width;
};

void place_cameras_and_lights(void* p) {
  const CameraFrame* a = static_cast<const CameraFrame*>(p);
  mj_camlight(a->model, a->data);
}

void build_scene(void* p) {
  const CameraFrame* a = static_cast<const CameraFrame*>(p);
  mjvCamera camera;
  mjv_defaultCamera(&camera);
  camera.type = mjCAMERA_FIXED;
  camera.fixedcamid = a->camera_id;
  mjv_updateScene(a->model, a->data, a->option, nullptr, &camera, mjCAT_ALL, a->scene);
}

void draw_and_read(void* p) {
  const CameraFrame* a = static_cast<const CameraFrame*>(p);
  mjr_setBuffer(mjFB_OFFSCREEN, const_cast<mjrContext*>(a->context));
  const mjrRect viewport{0, 0, a->width, a->height};
  mjr_render(viewport, a->scene, a->context);
  mjr_readPixels(a->target, nullptr, viewport, a->context);
}

void flip_rows(const uint8_t* from, uint8_t* to, int height, int width) {
  const size_t row = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) std::memcpy(to + row * (height - 1 - y), from + row * y, row);
}

// Runs a drawing step under MuJoCo's error trap (a lock must be taken outside it: an error jumps over the body).
void trapped(void (*body)(void*), CameraFrame& frame, int64_t env) {
  if (const char* error = sim::call_trapped(body, &frame)) {
    throw std::runtime_error("rendering env " + std::to_string(env) + ": MuJoCo error: " + error);
  }
}

}  // namespace

// A GL context with MuJoCo's render context and a scene for each task among its envs (the other tasks' entries
// stay empty); used by one thread at a time.
class BatchRenderer::Slot {
 public:
  Slot(const RenderSpec& spec, const std::vector<bool>& needed)
      : contexts_(spec.models.size()),
        scenes_(spec.models.size()),
        scratch_(static_cast<size_t>(spec.height) * spec.width * 3) {
    for (auto& c : contexts_) mjr_defaultContext(&c);
    for (auto& s : scenes_) mjv_defaultScene(&s);
    CurrentBinding keep;
    if (!gl_.make_current()) {
      throw GlError("OpenGL: a new context cannot be made current (" + gl_.last_error() + ")");
    }
    for (size_t t = 0; t < spec.models.size(); ++t) {
      if (!needed[t]) continue;
      tasks_.push_back(static_cast<int32_t>(t));
      TaskSetup setup{reinterpret_cast<const mjModel*>(spec.models[t]), &scenes_[t], &contexts_[t]};
      if (const char* error = sim::call_trapped(make_task_context, &setup)) {
        throw GlError(std::string("MuJoCo could not set up rendering: ") + error);
      }
    }
  }

  ~Slot() {
    for (auto& s : scenes_) mjv_freeScene(&s);
    CurrentBinding keep;
    // If another library's exit hook already terminated the display, the GL objects went with it.
    if (gl_.make_current()) {
      for (auto& c : contexts_) mjr_freeContext(&c);
    }
  }

  const GlContext& gl() const { return gl_; }
  const std::vector<int32_t>& tasks() const { return tasks_; }
  const mjrContext& context(int32_t task) const { return contexts_[static_cast<size_t>(task)]; }
  mjvScene& scene(int32_t task) { return scenes_[static_cast<size_t>(task)]; }
  uint8_t* scratch() { return scratch_.data(); }

 private:
  GlContext gl_;
  std::vector<mjrContext> contexts_;
  std::vector<mjvScene> scenes_;
  std::vector<uint8_t> scratch_;
  std::vector<int32_t> tasks_;  // the tasks it can draw
};

// One render call's stale envs of a task, claimed one at a time by the slots that hold the task.
struct BatchRenderer::TaskQueue {
  std::vector<int64_t> envs;
  std::atomic<size_t> next{0};
};

namespace {

// Env i's slot: envs sorted by task (then index) and cut into `slots` contiguous runs of near-equal length, so
// a slot meets few tasks and every slot gets a share of any task's envs.
std::vector<int32_t> deal_envs(const std::vector<int32_t>& task_of_env, int32_t slots) {
  const size_t n = task_of_env.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return task_of_env[a] < task_of_env[b]; });
  std::vector<int32_t> slot_of_env(n);
  for (size_t rank = 0; rank < n; ++rank) slot_of_env[order[rank]] = static_cast<int32_t>(rank * slots / n);
  return slot_of_env;
}

}  // namespace

BatchRenderer::BatchRenderer(RenderSpec spec, RenderOutputs out, int slots)
    : spec_(std::move(spec)), out_(std::move(out)) {
  if (spec_.datas.empty() || spec_.datas.size() != spec_.task_of_env.size()) {
    throw std::invalid_argument("datas and task_of_env: one entry per env, at least one env");
  }
  if (spec_.geom_groups.size() != mjNGROUP) {
    throw std::invalid_argument("geom_groups: one flag per MuJoCo geom group (" + std::to_string(mjNGROUP) + ")");
  }
  mjv_defaultOption(&option_);
  for (int g = 0; g < mjNGROUP; ++g) option_.geomgroup[g] = spec_.geom_groups[static_cast<size_t>(g)] ? 1 : 0;
  for (const auto& ids : spec_.camera_ids) {
    if (ids.size() != out_.images.size()) throw std::invalid_argument("camera_ids: one id per camera and task");
  }
  for (int32_t task : spec_.task_of_env) {
    if (task < 0 || static_cast<size_t>(task) >= spec_.models.size()) {
      throw std::invalid_argument("task_of_env: out of range");
    }
  }
  const int32_t count = static_cast<int32_t>(std::min<int64_t>(slots > 0 ? slots : default_slots(), size()));
  const std::vector<int32_t> slot_of_env = deal_envs(spec_.task_of_env, count);
  const std::unique_lock<std::mutex> gl = gl_turn();
  try {
    for (int32_t k = 0; k < count; ++k) {
      std::vector<bool> needed(spec_.models.size(), false);
      for (size_t i = 0; i < slot_of_env.size(); ++i) {
        if (slot_of_env[i] == k) needed[static_cast<size_t>(spec_.task_of_env[i])] = true;
      }
      slots_.push_back(std::make_unique<Slot>(spec_, needed));
    }
  } catch (...) {
    slots_.clear();  // freed here, under the lock
    throw;
  }
}

int BatchRenderer::default_slots() { return gl_software() ? 1 : num_threads(); }

BatchRenderer::~BatchRenderer() {
  if (slots_.empty()) return;
  const std::unique_lock<std::mutex> gl = gl_turn();
  slots_.clear();
}

std::vector<BatchRenderer::TaskQueue> BatchRenderer::stale_envs_by_task(const int64_t* rows, int64_t n,
                                                                        const bool* wanted) const {
  std::vector<bool> listed(static_cast<size_t>(size()), false);
  std::vector<TaskQueue> queues(spec_.models.size());
  for (int64_t r = 0; r < n; ++r) {
    const int64_t env = rows[r];
    if (env < 0 || env >= size()) {
      throw std::out_of_range("rows: env " + std::to_string(env) + " is not in [0, " + std::to_string(size()) + ")");
    }
    bool stale = false;
    for (int64_t c = 0; c < cameras(); ++c) stale = stale || (wanted[c] && !out_.current[env * cameras() + c]);
    if (stale && !listed[static_cast<size_t>(env)]) {
      listed[static_cast<size_t>(env)] = true;
      queues[static_cast<size_t>(spec_.task_of_env[static_cast<size_t>(env)])].envs.push_back(env);
    }
  }
  return queues;
}

void BatchRenderer::draw_env(Slot& slot, int64_t env, const bool* wanted) {
  const int32_t task = spec_.task_of_env[static_cast<size_t>(env)];
  const size_t frame_size = static_cast<size_t>(spec_.height) * spec_.width * 3;
  bool* current = out_.current + env * cameras();
  CameraFrame frame{reinterpret_cast<const mjModel*>(spec_.models[static_cast<size_t>(task)]),
                    reinterpret_cast<mjData*>(spec_.datas[static_cast<size_t>(env)]),
                    &slot.scene(task),
                    &slot.context(task),
                    &option_,
                    -1,
                    nullptr,
                    spec_.height,
                    spec_.width};
  trapped(place_cameras_and_lights, frame, env);
  for (int64_t c = 0; c < cameras(); ++c) {
    if (!wanted[c] || current[c]) continue;
    uint8_t* destination = out_.images[static_cast<size_t>(c)] + env * frame_size;
    frame.camera_id = spec_.camera_ids[static_cast<size_t>(task)][static_cast<size_t>(c)];
    frame.target = spec_.bottom_up ? destination : slot.scratch();
    trapped(build_scene, frame, env);
    {
      const std::unique_lock<std::mutex> gl = gl_turn();
      trapped(draw_and_read, frame, env);
    }
    if (!spec_.bottom_up) flip_rows(slot.scratch(), destination, spec_.height, spec_.width);
    current[c] = true;
  }
}

void BatchRenderer::draw_slot(Slot& slot, std::vector<TaskQueue>& queues, const bool* wanted) {
  std::optional<CurrentBinding> keep;  // the thread's own binding (the caller's context, on the Python thread)
  const auto put_back = [&keep] {
    if (!keep) return;
    const std::unique_lock<std::mutex> gl = gl_turn();
    keep.reset();
  };
  try {
    for (int32_t task : slot.tasks()) {
      TaskQueue& queue = queues[static_cast<size_t>(task)];
      for (size_t j = queue.next.fetch_add(1); j < queue.envs.size(); j = queue.next.fetch_add(1)) {
        if (!keep) {
          const std::unique_lock<std::mutex> gl = gl_turn();
          keep.emplace();
          if (!slot.gl().make_current()) {
            throw std::runtime_error("OpenGL: cannot make a render context current (" +
                                     GlContext::last_error() + ")");
          }
        }
        draw_env(slot, queue.envs[j], wanted);
      }
    }
  } catch (...) {
    put_back();
    throw;
  }
  put_back();
}

void BatchRenderer::render(const int64_t* rows, int64_t n, const bool* wanted) {
  std::lock_guard<std::mutex> one_call_at_a_time(calls_);
  std::vector<TaskQueue> queues = stale_envs_by_task(rows, n, wanted);
  parallel_for(static_cast<int64_t>(slots_.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) draw_slot(*slots_[static_cast<size_t>(k)], queues, wanted);
  });
}

}  // namespace ript::render
