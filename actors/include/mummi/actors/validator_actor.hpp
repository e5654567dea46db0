#pragma once

/// The validator actor: owns one md::validator and gives a batch of generated structures its
/// vacuum-minimisation verdicts.
///
/// Messages:
/// - structure_batch{request_id, structures} -> the same structure_batch with every structure's
///   `epot_kj_mol`, `fmax_kj_mol_nm` and `valid` (the verdict's `accepted`) set; an accepted
///   structure's `coords_nm` is replaced by its minimised positions (atoms * 3 values, nm, in
///   the template's atom order), a rejected one keeps its coordinates. `id`, `latent`, `lambda`
///   and `sampler` are kept. The whole batch goes through one md::validator::validate call
///   (which runs `workers` structures in parallel). When any structure's `coords_nm` does not
///   hold atoms * 3 values, the reply is messages::error_reply{rejected, ...} naming every such
///   structure id with its size and the expected one, and nothing of the batch is validated.
///   When GROMACS cannot be run at all, the reply is error_reply{internal, ...}. An empty batch
///   is answered as is.
///
/// The actor runs detached (validation blocks its thread for as long as GROMACS runs); it may
/// be sent messages from any thread.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "mummi/md_bridge/structure.hpp"
#include "mummi/md_bridge/validator.hpp"

namespace mummi::actors {

struct validator_actor_config {
  /// The validator's topology, thresholds, workers, GROMACS and work root.
  md::validator_config validator{};
  /// The protein as the topology lists its atoms (names, residues, box): each structure's
  /// coordinates are put into a copy of it. Read by the caller (e.g. md::read_gro).
  md::structure structure_template{};
};

/// Spawns the validator actor, detached. Constructs the md::validator before spawning, in the
/// caller's thread: throws md::md_error / md::io_error (naming the problem) for a bad
/// configuration, and md::md_error when the template has no atoms.
caf::actor spawn_validator_actor(caf::actor_system& sys, validator_actor_config cfg);

} // namespace mummi::actors
