#include "mummi/actors/validator_actor.hpp"

#include <caf/all.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mummi/md_bridge/errors.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;

namespace {

struct validator_state {
  std::unique_ptr<md::validator> validator; ///< set before the behaviour runs
  md::structure structure_template;         ///< atom names etc. of every structure
  static inline const char* name = "mummi.validator";
};

using validator_actor_type = caf::stateful_actor<validator_state>;

/// Every structure whose coordinate count is not atoms * 3, as one message; empty when all fit.
std::string coords_size_problems(const msg::structure_batch& batch, std::size_t atoms) {
  std::string problems;
  for (const auto& s : batch.structures) {
    if (s.coords_nm.size() == atoms * 3)
      continue;
    problems += problems.empty() ? "" : "; ";
    problems += "structure " + std::to_string(s.id) + " has "
                + std::to_string(s.coords_nm.size()) + " coordinates";
  }
  if (!problems.empty())
    problems = "batch " + std::to_string(batch.request_id) + ": " + problems + " (the protein has "
               + std::to_string(atoms) + " atoms, " + std::to_string(atoms * 3)
               + " coordinates); nothing was validated";
  return problems;
}

caf::message validate(validator_state& st, msg::structure_batch batch) {
  if (batch.structures.empty())
    return caf::make_message(std::move(batch));
  const std::size_t atoms = st.structure_template.atoms.size();
  if (auto problems = coords_size_problems(batch, atoms); !problems.empty())
    return caf::make_message(msg::error_reply{msg::error_code::rejected, std::move(problems)});
  std::vector<md::structure> structures(batch.structures.size(), st.structure_template);
  for (std::size_t i = 0; i < structures.size(); ++i) {
    const auto& coords = batch.structures[i].coords_nm;
    auto& s = structures[i];
    s.title = "structure " + std::to_string(batch.structures[i].id);
    for (std::size_t a = 0; a < atoms; ++a) {
      s.atoms[a].position_nm = md::vec3{coords[3 * a], coords[3 * a + 1], coords[3 * a + 2]};
      s.atoms[a].velocity_nm_ps.reset();
    }
  }
  std::vector<md::validation_verdict> verdicts;
  try {
    verdicts = st.validator->validate(std::span<const md::structure>(structures));
  } catch (const std::exception& e) {
    return caf::make_message(
      msg::error_reply{msg::error_code::internal, "batch " + std::to_string(batch.request_id)
                                                    + ": validation failed: " + e.what()});
  }
  if (verdicts.size() != structures.size())
    return caf::make_message(msg::error_reply{
      msg::error_code::internal, "batch " + std::to_string(batch.request_id) + ": the validator"
                                   + " gave " + std::to_string(verdicts.size())
                                   + " verdicts for " + std::to_string(structures.size())
                                   + " structures"});
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    const auto& v = verdicts[i];
    auto& s = batch.structures[i];
    s.epot_kj_mol = v.epot_kj_mol;
    s.fmax_kj_mol_nm = v.fmax_kj_mol_nm;
    s.valid = v.accepted;
    if (!v.accepted)
      continue;
    if (v.positions_nm.size() != atoms)
      return caf::make_message(msg::error_reply{
        msg::error_code::internal,
        "batch " + std::to_string(batch.request_id) + ": structure " + std::to_string(s.id)
          + " was accepted with " + std::to_string(v.positions_nm.size())
          + " minimised positions, expected " + std::to_string(atoms)});
    s.coords_nm.clear();
    s.coords_nm.reserve(atoms * 3);
    for (const auto& p : v.positions_nm)
      s.coords_nm.insert(s.coords_nm.end(), p.begin(), p.end());
  }
  return caf::make_message(std::move(batch));
}

caf::behavior validator_behavior(validator_actor_type* self,
                                 std::shared_ptr<validator_state> init) {
  self->state = std::move(*init);
  return {
    [self](msg::structure_batch& batch) {
      return validate(self->state, std::move(batch));
    },
  };
}

} // namespace

caf::actor spawn_validator_actor(caf::actor_system& sys, validator_actor_config cfg) {
  if (cfg.structure_template.atoms.empty())
    throw md::md_error("validator actor: the structure template (\""
                       + cfg.structure_template.title
                       + "\") has no atoms; give the protein as the topology "
                       + cfg.validator.topology.string() + " lists it");
  auto st = std::make_shared<validator_state>();
  st->validator = std::make_unique<md::validator>(std::move(cfg.validator));
  st->structure_template = std::move(cfg.structure_template);
  return sys.spawn<caf::detached>(validator_behavior, std::move(st));
}

} // namespace mummi::actors
