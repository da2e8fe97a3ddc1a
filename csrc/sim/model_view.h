// A per-env view of one task's shared, read-only mjModel.
//
// MetaWorld's resets edit only body_pos and site_pos of an env's model (object, fixture and goal placement), so
// the envs of a task need private copies of those two arrays only. A view is a copy of the template's mjModel
// struct (sizes, options and array pointers) whose body_pos/site_pos point at arrays it owns; every other array
// is the template's. mj_step/mj_forward only read the model, so an env steps on its view exactly as on a full
// copy of the template with the same body_pos/site_pos, for a few KB instead of the template's buffer (21 MB for
// pick-place: textures, meshes, BVHs).
//
// A view is not a model MuJoCo owns: never pass it to mj_deleteModel, mj_copyModel or anything that frees or
// reallocates model memory, and never let it outlive its template or write through its shared arrays.
#pragma once

#include <mujoco/mujoco.h>

#include <vector>

namespace ript::sim {

class ModelView {
 public:
  // Private body_pos/site_pos start as the template's.
  explicit ModelView(const mjModel* tpl);
  ModelView(const ModelView&) = delete;  // the struct points into this object's own arrays
  ModelView& operator=(const ModelView&) = delete;

  mjModel* model() { return &view_; }
  const mjModel* model() const { return &view_; }

 private:
  mjModel view_;
  std::vector<mjtNum> body_pos_, site_pos_;
};

}  // namespace ript::sim
