#include "samplers.hpp"

namespace mummi::ml {

sampler_registry sampler_registry::with_builtins() {
  sampler_registry r;
  r.add("random", make_random_sampler);
  r.add("ot", make_ot_sampler);
  r.add("ot_feedback", make_ot_feedback_sampler);
  r.add("importance", make_importance_sampler);
  return r;
}

} // namespace mummi::ml
