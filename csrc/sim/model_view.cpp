#include "sim/model_view.h"

#include <stdexcept>

namespace ript::sim {
namespace {

const mjModel& checked(const mjModel* m) {
  if (m == nullptr) throw std::invalid_argument("ModelView: null template model");
  return *m;
}

}  // namespace

ModelView::ModelView(const mjModel* tpl)
    : view_(checked(tpl)),
      body_pos_(tpl->body_pos, tpl->body_pos + 3 * tpl->nbody),
      site_pos_(tpl->site_pos, tpl->site_pos + 3 * tpl->nsite) {
  view_.body_pos = body_pos_.data();
  view_.site_pos = site_pos_.data();
}

}  // namespace ript::sim
