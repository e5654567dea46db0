#pragma once

/// The generator actor of the structure generator: owns one autoencoder (mummi::ml) and turns
/// the latent points of a structure batch into bead coordinates with one batched decode.
///
/// Messages:
/// - structure_batch{request_id, structures} -> the same structure_batch with every structure's
///   `coords_nm` set to the decoding of its `latent` (beads * 3 values, nm; coordinates already
///   present are replaced). `id`, `latent`, `lambda`, `sampler` and the other fields are kept.
///   The whole batch goes through one decode call. When any structure's latent size is not the
///   model's latent size, the reply is messages::error_reply{rejected, ...} naming every such
///   structure id with its size and the expected one, and nothing of the batch is decoded. A
///   decode failure replies error_reply{internal, ...}. An empty batch is answered as is.
///
/// The actor runs detached (decoding blocks its thread); it may be sent messages from any
/// thread.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>

#include "mummi/ml/autoencoder.hpp"

namespace mummi::actors {

struct generator_actor_config {
  /// The model file (a mummi model file or a TorchScript module) loaded at spawn.
  std::filesystem::path model_path;
  /// When set, the model's bead count must equal it.
  std::optional<std::size_t> expected_beads;
  /// Where the model runs.
  ml::device_kind device = ml::device_kind::cpu;
};

/// Spawns the generator actor, detached. Loads the model before spawning, in the caller's
/// thread: throws ml::model_error naming the model path when it is missing, unreadable,
/// corrupt or has another bead count than `expected_beads`.
caf::actor spawn_generator_actor(caf::actor_system& sys, const generator_actor_config& cfg);

} // namespace mummi::actors
