#pragma once

/// The structure generator (SG): the service the workflow manager asks for validated
/// structures. It owns a sampler actor, a generator actor and a validator actor and chains
/// them: the sampler picks latent points, the generator decodes them in one batch, the
/// validator minimises each in vacuum; every verdict goes back to the sampler as validation
/// feedback and the accepted structures wait in a buffer of `factor_extra x buffer` (MuMMI
/// keeps factor 2) until requested.
///
/// Messages:
/// - structure_request{request_id, count} -> structure_batch{request_id, count validated
///   structures} (minimised coordinates, energies, `valid` set). Requests are answered in the
///   order they arrive, each in full, as soon as enough structures are ready; a structure is
///   handed out at most once and never twice the same latent point (a repeat is dropped and
///   journaled as `duplicate`). count 0 is answered at once with an empty batch; a count above
///   `max_request` is refused with error_reply{rejected}. After `max_batch_errors` batches in a
///   row failed in the generator or validator, waiting and new requests get
///   error_reply{internal} naming the last failure, until a `resume`.
/// - feedback{createsims | frame, ...} -> no reply: journaled and given to the sampler.
///   (Validation feedback is the SG's own and is not accepted from outside: error_reply.)
/// - control -> ack or error_reply{rejected}:
///   swap_sampler (target = name, params): journaled, then the sampler actor's own answer;
///   structures already validated stay in the buffer and requests waiting are answered by
///   the new sampler's structures; nothing is lost or answered twice.
///   pause: no new structures are made (waiting requests keep waiting); resume: making them
///   again (and clears the failed state);
///   set_limit (target = buffer | factor_extra | batch, value): changes the buffer target;
///   stop: checkpoints the sampler into the journal, then acks; the SG then makes nothing more.
/// - (stats_atom) -> monitor_event{topic "structure_generator", kind "stats", fields: sampler,
///   ready, in_flight, waiting_requests, waiting_structures, sampled, valid, invalid,
///   duplicate, failed, delivered, batch_errors, validation_seconds}.
///
/// Durability: with a journal, every select, feedback and control sent to the sampler is
/// logged (in the order sent) before it is sent; the structures of a batch are recorded as
/// `sampled` when the sampler returns them, their verdicts when the validator does and their
/// delivery before the reply leaves. The sampler is checkpointed at spawn, at stop and every
/// max(`checkpoint_every`, a quarter of the log so far) log entries. spawn_structure_generator on a journal that has entries resumes:
/// the sampler actor is restored from the latest checkpoint and the log after it replayed (so
/// its next selections are those of an uninterrupted run), `valid` structures fill the buffer
/// again and `sampled` ones are decoded and validated again.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "mummi/actors/generator_actor.hpp"
#include "mummi/actors/sampler_actor.hpp"
#include "mummi/actors/validator_actor.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/createsims.hpp"

namespace mummi::actors {

using stats_atom = caf::atom_constant<caf::atom("stats")>;

struct structure_generator_config {
  sampler_actor_config sampler;     ///< its `checkpoint` is set from the journal on resume
  generator_actor_config generator;
  validator_actor_config validator;
  /// Structures the workflow manager wants on hand; the SG keeps factor_extra x buffer ready.
  std::size_t buffer = 16;
  double factor_extra = 2;
  /// Most structures per sampler -> generator -> validator round trip.
  std::size_t batch = 16;
  /// Round trips under way at once (decode of one overlaps validation of another).
  std::size_t pipeline_depth = 2;
  std::size_t max_request = 100000;
  std::size_t max_batch_errors = 3;
  /// Fewest sampler log entries between sampler checkpoints (more once a quarter of the log
  /// is more).
  std::size_t checkpoint_every = 64;
  /// The campaign journal (shared with the rest of the head, used from the SG's thread only
  /// while the SG runs). Null: nothing is durable.
  std::shared_ptr<coupling::journal> journal;
};

/// A structure generator for `system`'s protein (`protein`: its atoms as the topology lists
/// them) decoded by the model at `model_path` and sampled between the encodings of the state-A
/// and state-B frames in `frames` (HDF5 frame stores). The validator's vacuum topology is
/// written to `work_dir` and its runs go under it. Sampler `ot`, seed 0 and every other field
/// at its default; no journal. Throws what loading the model, reading the frames or writing
/// the topology throws.
structure_generator_config structure_generator_for(const md::system_spec& system,
                                                   const md::structure& protein,
                                                   const std::filesystem::path& model_path,
                                                   const std::vector<std::filesystem::path>& frames,
                                                   const std::filesystem::path& work_dir);

/// Spawns the SG and its three actors (linked to it: they end together). With a journal that
/// has sampler entries, resumes from it (see above) before returning. Throws what the three
/// spawns throw (bad model, validator config, sampler, or a checkpoint that does not restore),
/// coupling::journal_error, and std::invalid_argument for buffer, batch or pipeline_depth 0 or
/// factor_extra below 1.
caf::actor spawn_structure_generator(caf::actor_system& sys, structure_generator_config cfg);

} // namespace mummi::actors
