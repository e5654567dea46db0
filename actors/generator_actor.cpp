#include "mummi/actors/generator_actor.hpp"

#include <caf/all.hpp>

#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;

namespace {

struct generator_state {
  std::optional<ml::autoencoder> model; ///< set before the behaviour runs
  std::string model_name;              ///< the model path, for error messages
  static inline const char* name = "mummi.generator";
};

using generator_actor_type = caf::stateful_actor<generator_state>;

/// Every structure whose latent size is not the model's, as one message; empty when all fit.
std::string latent_size_problems(const msg::structure_batch& batch, std::size_t latent_size) {
  std::string problems;
  for (const auto& s : batch.structures) {
    if (s.latent.size() == latent_size)
      continue;
    problems += problems.empty() ? "" : "; ";
    problems += "structure " + std::to_string(s.id) + " has a latent of "
                + std::to_string(s.latent.size()) + " values";
  }
  if (!problems.empty())
    problems = "batch " + std::to_string(batch.request_id) + ": " + problems + " (the model's"
               + " latent size is " + std::to_string(latent_size) + "); nothing was decoded";
  return problems;
}

caf::message generate(generator_state& st, msg::structure_batch batch) {
  if (batch.structures.empty())
    return caf::make_message(std::move(batch));
  const ml::autoencoder& model = *st.model;
  const std::size_t latent_size = model.latent_size();
  if (auto problems = latent_size_problems(batch, latent_size); !problems.empty())
    return caf::make_message(msg::error_reply{msg::error_code::rejected, std::move(problems)});
  std::vector<float> latent;
  latent.reserve(batch.structures.size() * latent_size);
  for (const auto& s : batch.structures)
    latent.insert(latent.end(), s.latent.begin(), s.latent.end());
  std::vector<float> coords;
  try {
    coords = model.decode(std::span<const float>(latent));
  } catch (const std::exception& e) {
    return caf::make_message(msg::error_reply{
      msg::error_code::internal, "batch " + std::to_string(batch.request_id)
                                   + ": decoding with model " + st.model_name
                                   + " failed: " + e.what()});
  }
  const std::size_t per_structure = model.beads() * 3;
  if (coords.size() != per_structure * batch.structures.size())
    return caf::make_message(msg::error_reply{
      msg::error_code::internal,
      "batch " + std::to_string(batch.request_id) + ": model " + st.model_name + " decoded "
        + std::to_string(coords.size()) + " coordinates, expected "
        + std::to_string(per_structure * batch.structures.size())});
  for (std::size_t i = 0; i < batch.structures.size(); ++i) {
    const auto first = coords.begin() + static_cast<std::ptrdiff_t>(i * per_structure);
    batch.structures[i].coords_nm.assign(first,
                                         first + static_cast<std::ptrdiff_t>(per_structure));
  }
  return caf::make_message(std::move(batch));
}

caf::behavior generator_behavior(generator_actor_type* self,
                                 std::shared_ptr<generator_state> init) {
  self->state = std::move(*init);
  return {
    [self](msg::structure_batch& batch) {
      return generate(self->state, std::move(batch));
    },
  };
}

} // namespace

caf::actor spawn_generator_actor(caf::actor_system& sys, const generator_actor_config& cfg) {
  auto st = std::make_shared<generator_state>();
  st->model.emplace(ml::autoencoder::load(cfg.model_path, cfg.expected_beads, cfg.device));
  st->model_name = cfg.model_path.string();
  return sys.spawn<caf::detached>(generator_behavior, std::move(st));
}

} // namespace mummi::actors
