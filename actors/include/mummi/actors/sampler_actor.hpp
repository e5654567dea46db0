#pragma once

/// The sampler actor of the structure generator: owns one latent-space sampler (mummi::ml) at a
/// time, answers structure requests with latent points to decode, keeps every feedback outcome,
/// swaps its sampler while the campaign runs (the new one is given the whole feedback history)
/// and checkpoints itself to a string from which an identical actor can be spawned.
///
/// Messages:
/// - structure_request{request_id, count} -> structure_batch{request_id, structures}: `count`
///   structures with `id` (the actor's own ids 1, 2, ...; never repeated, across swaps and
///   restores too), `latent` (z), `lambda` (position from A (0) to B (1) along the sampler's
///   matched pair; -1 where the sampler has none, e.g. `random`) and `sampler` (its name);
///   `coords_nm` stays empty (the generator decodes later).
/// - feedback{kind, structure_id, ok, latent} -> no reply. Given to the current sampler and
///   appended to the history. A structure id the current sampler did not produce (one from a
///   sampler before a swap) reaches the sampler with sample_id 0: frame positions are still
///   used, per-structure outcomes are not. Feedback the sampler rejects (a frame whose latent
///   size is not the ensembles' dims) is dropped and counted (`rejected` in the checkpoint).
/// - control{swap_sampler, target = sampler name, params} -> messages::ack naming the new
///   sampler, or messages::error_reply{rejected, ...} naming the bad sampler name or parameters
///   (the old sampler then stays). Any other control command -> error_reply{rejected}.
/// - (sampler_name_atom) -> std::string: the current sampler's name.
/// - (checkpoint_atom) -> std::string: the whole actor state (sampler name, parameters, the
///   sampler's own checkpoint, next id, id mapping, feedback history).
///
/// All state lives in the actor; it may be sent messages from any thread.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mummi/ml/sampler.hpp"

namespace mummi::actors {

using checkpoint_atom = caf::atom_constant<caf::atom("sckpt")>;
using sampler_name_atom = caf::atom_constant<caf::atom("sname")>;

struct sampler_actor_config {
  /// Where samplers are created by name (initially and on every swap); never null.
  std::shared_ptr<const ml::sampler_registry> registry;
  /// The encodings of the state-A and state-B frames the samplers work between.
  ml::state_ensembles states;
  /// The first sampler and its parameters.
  std::string sampler = "ot";
  ml::sampler_params params;
  /// Seed of the first sampler; the sampler made by the n-th swap gets seed + n.
  std::uint64_t seed = 0;
  /// A string returned by checkpoint_atom: when set, the actor continues exactly from it and
  /// `sampler`, `params` and `seed` are ignored (the checkpoint's are used).
  std::optional<std::string> checkpoint;
};

/// Spawns the sampler actor. Creates the first sampler (or restores the checkpoint) before
/// spawning, in the caller's thread: throws ml::sampler_error naming an unknown sampler, bad
/// parameters or ensembles, or the place and problem in a bad checkpoint; std::invalid_argument
/// for a null registry.
caf::actor spawn_sampler_actor(caf::actor_system& sys, sampler_actor_config cfg);

} // namespace mummi::actors
