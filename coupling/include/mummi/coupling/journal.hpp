#pragma once

/// The campaign journal: one SQLite file (`journal.sqlite` in the campaign directory) holding
/// what a campaign must not lose: every structure the structure generator made and what became
/// of it, the ordered log of everything the sampler was told, the sampler's checkpoints and a
/// list of events. WAL mode with synchronous=FULL: a call that returned is on disk, so a state
/// may be acknowledged to others after it.
///
/// Schema (version 2; a version-1 journal is upgraded when opened), documented in
/// docs/data.md:
///   meta(key, value)                        schema_version, created_unix_ns
///   structures(id, sampler, lambda, latent, coords, epot_kj_mol, fmax_kj_mol_nm, state,
///              request_id, updated_unix_ns)
///   sampler_log(seq, op, count, body)       op: select (count) | feedback | control (body:
///                                           a Cap'n Proto envelope, the wire codec's bytes)
///   sampler_checkpoints(seq, sampler, bytes, unix_ns)   bytes cover sampler_log up to seq
///   events(seq, unix_ns, source, kind, text)
///   jobs(job_id, kind, structure_id, state, node, attempt, seed, input_dir, work_dir,
///        target_ns, ns_done, reason, message, updated_unix_ns)           (version 2)
///   attempts(job_id, attempt, node, started_unix_ns, ended_unix_ns, status, reason, message)
///
/// Not thread-safe: one owner (an actor) at a time.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mummi/messages/messages.hpp"

namespace mummi::coupling {

/// A journal that cannot be created, opened, read or written, or whose content is not a mummi
/// journal. `what()` reads "path: problem".
class journal_error : public std::runtime_error {
public:
  journal_error(std::filesystem::path path, const std::string& problem)
    : std::runtime_error(path.string() + ": " + problem), path_(std::move(path)) {}
  const std::filesystem::path& path() const noexcept {
    return path_;
  }

private:
  std::filesystem::path path_;
};

/// What became of a generated structure.
enum class structure_state : std::uint8_t {
  sampled,   ///< chosen by the sampler, not yet validated
  valid,     ///< validated and accepted, waiting to be handed out
  invalid,   ///< rejected by the validator
  duplicate, ///< the same latent point as one handed out or waiting before it
  failed,    ///< lost to an error of the generator or validator (not the structure's fault)
  delivered, ///< handed to the workflow manager
};

/// "sampled", "valid", ...
const char* to_string(structure_state s) noexcept;

struct journal_structure {
  messages::structure value;
  structure_state state = structure_state::sampled;
  std::uint64_t request_id = 0; ///< the request it was delivered to; 0 before
};

enum class sampler_op : std::uint8_t { select, feedback, control };

struct sampler_log_entry {
  std::uint64_t seq = 0;
  sampler_op op = sampler_op::select;
  std::uint32_t count = 0;            ///< select: structures asked for
  std::optional<messages::body> body; ///< feedback / control: the message
};

struct sampler_checkpoint {
  std::uint64_t seq = 0; ///< covers sampler_log entries up to and including seq
  std::string sampler;
  std::string bytes;
};

struct journal_event {
  std::uint64_t seq = 0;
  std::int64_t unix_ns = 0;
  std::string source;
  std::string kind;
  std::string text;
};

/// Where a createsims or simulation job is.
enum class job_state : std::uint8_t { queued, running, succeeded, failed, cancelled };

/// "queued", "running", ...
const char* to_string(job_state s) noexcept;

struct journal_job {
  std::uint64_t job_id = 0;
  messages::job_kind kind = messages::job_kind::createsims;
  std::uint64_t structure_id = 0;
  job_state state = job_state::queued;
  std::string node;           ///< where it runs or last ran
  std::uint32_t attempt = 0;  ///< attempts started so far
  std::uint64_t seed = 0;
  std::string input_dir;
  std::string work_dir;
  double target_ns = 0;
  double ns_done = 0;
  messages::failure_reason reason = messages::failure_reason::none;
  std::string message;
};

enum class journal_mode : std::uint8_t {
  create,         ///< a new file; an existing one is refused
  open,           ///< an existing journal
  open_or_create, ///< the existing journal, or a new one when there is no file
};

class journal {
public:
  /// Opens or creates the journal at `path`. Throws journal_error naming the path and the
  /// problem: no such file (open), already exists (create), not an SQLite file, not a mummi
  /// journal, a newer schema version, or any SQLite failure.
  static journal open(const std::filesystem::path& path, journal_mode mode);

  journal(journal&&) noexcept;
  journal& operator=(journal&&) noexcept;
  ~journal();

  const std::filesystem::path& path() const noexcept;

  /// Groups every write until commit() into one transaction (nested scopes join the outer
  /// one). Destroyed without commit(): everything since the outermost begin is rolled back.
  class transaction {
  public:
    explicit transaction(journal& j);
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    ~transaction();
    void commit();

  private:
    journal* journal_;
    bool done_ = false;
  };

  // --- structures ----------------------------------------------------------------------------

  /// Records new structures (ids not yet in the journal) in `state`. A known id is left as it
  /// is and reported by the return value: the number of structures actually added.
  std::size_t add_structures(std::span<const messages::structure> structures,
                             structure_state state);
  /// Stores a structure's validation result (coordinates, energies) and its new state.
  void update_structure(const messages::structure& s, structure_state state);
  /// Moves the given structures to `delivered` for request `request_id`.
  void mark_delivered(std::span<const std::uint64_t> ids, std::uint64_t request_id);
  /// The structures in `state`, by id.
  std::vector<journal_structure> structures(structure_state state) const;
  std::optional<journal_structure> find_structure(std::uint64_t id) const;
  /// How many structures are in `state`.
  std::size_t count(structure_state state) const;

  // --- the sampler's log and checkpoints -----------------------------------------------------

  /// Appends a select of `count` structures; returns its seq.
  std::uint64_t log_select(std::uint32_t count);
  /// Appends a feedback or control message; returns its seq.
  std::uint64_t log_message(sampler_op op, const messages::body& body);
  /// Entries with seq > `after`, in order. A body that does not decode throws journal_error
  /// naming the seq.
  std::vector<sampler_log_entry> sampler_log(std::uint64_t after = 0) const;
  /// The highest seq logged so far (0 when none).
  std::uint64_t last_sampler_seq() const;
  /// Stores a checkpoint; only it and the one before it are kept.
  void put_sampler_checkpoint(const sampler_checkpoint& c);
  /// The checkpoint with the highest seq, if any.
  std::optional<sampler_checkpoint> latest_sampler_checkpoint() const;

  // --- jobs ----------------------------------------------------------------------------------

  /// Records a job as it is now (inserted, or replacing the row with its id).
  void put_job(const journal_job& job);
  /// Every job, by id.
  std::vector<journal_job> jobs() const;
  /// The highest job id so far (0 when none).
  std::uint64_t last_job_id() const;
  /// Records that attempt `attempt` of a job started on `node` / ended.
  void start_attempt(std::uint64_t job_id, std::uint32_t attempt, const std::string& node);
  void end_attempt(std::uint64_t job_id, std::uint32_t attempt, messages::job_status status,
                   messages::failure_reason reason, const std::string& message);
  /// How many attempts of a job the journal holds, ended or not.
  std::size_t attempt_count(std::uint64_t job_id) const;

  // --- events --------------------------------------------------------------------------------

  void add_event(std::string_view source, std::string_view kind, std::string_view text);
  std::vector<journal_event> events() const;

private:
  struct impl;
  explicit journal(std::unique_ptr<impl> p);
  void begin();
  void commit();
  void rollback() noexcept;
  std::unique_ptr<impl> impl_;
};

} // namespace mummi::coupling
