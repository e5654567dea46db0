#include "mummi/coupling/journal.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "mummi/messages/codec.hpp"

namespace mummi::coupling {

namespace {

constexpr int schema_version = 2;

constexpr const char* schema_sql = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE structures(
  id INTEGER PRIMARY KEY,
  sampler TEXT NOT NULL,
  lambda REAL NOT NULL,
  latent BLOB NOT NULL,
  coords BLOB NOT NULL,
  epot_kj_mol REAL NOT NULL,
  fmax_kj_mol_nm REAL NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),
  request_id INTEGER NOT NULL DEFAULT 0,
  updated_unix_ns INTEGER NOT NULL);
CREATE INDEX structures_by_state ON structures(state, id);
CREATE TABLE sampler_log(
  seq INTEGER PRIMARY KEY,
  op INTEGER NOT NULL CHECK (op BETWEEN 0 AND 2),
  count INTEGER NOT NULL,
  body BLOB);
CREATE TABLE sampler_checkpoints(
  seq INTEGER PRIMARY KEY,
  sampler TEXT NOT NULL,
  bytes BLOB NOT NULL,
  unix_ns INTEGER NOT NULL);
CREATE TABLE events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  unix_ns INTEGER NOT NULL,
  source TEXT NOT NULL,
  kind TEXT NOT NULL,
  text TEXT NOT NULL);
)sql";

/// Added by schema version 2 (a version-1 journal gets it when opened).
constexpr const char* jobs_sql = R"sql(
CREATE TABLE jobs(
  job_id INTEGER PRIMARY KEY,
  kind INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 1),
  structure_id INTEGER NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 4),
  node TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  seed INTEGER NOT NULL DEFAULT 0,
  input_dir TEXT NOT NULL,
  work_dir TEXT NOT NULL,
  target_ns REAL NOT NULL DEFAULT 0,
  ns_done REAL NOT NULL DEFAULT 0,
  reason INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  updated_unix_ns INTEGER NOT NULL);
CREATE INDEX jobs_by_state ON jobs(state, job_id);
CREATE TABLE attempts(
  job_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  node TEXT NOT NULL,
  started_unix_ns INTEGER NOT NULL,
  ended_unix_ns INTEGER,
  status INTEGER,
  reason INTEGER,
  message TEXT,
  PRIMARY KEY (job_id, attempt));
)sql";

std::int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string_view floats_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)};
}

} // namespace

const char* to_string(structure_state s) noexcept {
  switch (s) {
    case structure_state::sampled: return "sampled";
    case structure_state::valid: return "valid";
    case structure_state::invalid: return "invalid";
    case structure_state::duplicate: return "duplicate";
    case structure_state::failed: return "failed";
    case structure_state::delivered: return "delivered";
  }
  return "unknown";
}

namespace {

/// The open database and its path (journal::impl's content; the helpers below take it).
struct database {
  std::filesystem::path path;
  sqlite3* db = nullptr;

  database() = default;
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  ~database() {
    if (db != nullptr)
      sqlite3_close_v2(db);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw journal_error(path, what + (db != nullptr ? std::string(": ") + sqlite3_errmsg(db)
                                                    : std::string()));
  }

  void exec(const char* sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      throw journal_error(path, std::string("cannot run '") + std::string(sql).substr(0, 40)
                                  + "': " + text);
    }
  }
};

} // namespace

struct journal::impl : database {
  int depth = 0; ///< open transaction scopes
};

namespace {

/// One prepared statement; binds and columns are numbered as SQLite numbers them.
class statement {
public:
  statement(const database& j, const char* sql) : j_(j) {
    if (sqlite3_prepare_v2(j.db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      j.fail(std::string("cannot prepare '") + std::string(sql).substr(0, 40) + "'");
  }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement() {
    sqlite3_finalize(stmt_);
  }

  statement& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, double v) {
    check(sqlite3_bind_double(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  statement& bind_blob(int i, std::string_view v) {
    check(sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }

  /// Steps once: true while a row is there.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc != SQLITE_DONE)
      j_.fail("a statement failed");
    return false;
  }
  /// Runs a statement that returns no rows, then makes it ready to run again.
  void run() {
    step();
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::int64_t integer(int col) const {
    return sqlite3_column_int64(stmt_, col);
  }
  double real(int col) const {
    return sqlite3_column_double(stmt_, col);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::string blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  bool is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }

private:
  void check(int rc) const {
    if (rc != SQLITE_OK)
      j_.fail("cannot bind a value");
  }

  const database& j_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::vector<float> floats_of(const std::string& bytes, const database& j, std::uint64_t id,
                             const char* what) {
  if (bytes.size() % sizeof(float) != 0)
    throw journal_error(j.path, "structure " + std::to_string(id) + ": " + what + " holds "
                                  + std::to_string(bytes.size())
                                  + " bytes, not a whole number of float32 values");
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

constexpr const char* structure_columns
  = "id, sampler, lambda, latent, coords, epot_kj_mol, fmax_kj_mol_nm, state, request_id";

journal_structure read_structure(const statement& st, const database& j) {
  journal_structure out;
  out.value.id = static_cast<std::uint64_t>(st.integer(0));
  out.value.sampler = st.text(1);
  out.value.lambda = static_cast<float>(st.real(2));
  out.value.latent = floats_of(st.blob(3), j, out.value.id, "latent");
  out.value.coords_nm = floats_of(st.blob(4), j, out.value.id, "coords");
  out.value.epot_kj_mol = st.real(5);
  out.value.fmax_kj_mol_nm = st.real(6);
  const std::int64_t state = st.integer(7);
  out.state = static_cast<structure_state>(state);
  out.value.valid = out.state == structure_state::valid || out.state == structure_state::delivered;
  out.request_id = static_cast<std::uint64_t>(st.integer(8));
  return out;
}

} // namespace

namespace {

/// Writes a new, complete journal at `path`: made under a temporary name in the same
/// directory, then hard-linked to `path` (which fails when `path` exists: another creator won)
/// and the temporary name removed.
void create_file(const std::filesystem::path& path) {
  std::filesystem::path tmp = path;
  tmp += ".new-" + std::to_string(now_unix_ns());
  {
    database d;
    d.path = tmp;
    if (sqlite3_open_v2(tmp.c_str(), &d.db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      throw journal_error(path, std::string("cannot create: ") + sqlite3_errmsg(d.db));
    d.exec("BEGIN IMMEDIATE");
    d.exec(schema_sql);
    d.exec(jobs_sql);
    statement st(d, "INSERT INTO meta(key, value) VALUES (?1, ?2)");
    st.bind(1, std::string_view("schema_version")).bind(2, std::to_string(schema_version)).run();
    st.bind(1, std::string_view("created_unix_ns")).bind(2, std::to_string(now_unix_ns())).run();
    d.exec("COMMIT");
  }
  std::error_code ec;
  std::filesystem::create_hard_link(tmp, path, ec);
  std::filesystem::remove(tmp);
  if (ec && ec != std::errc::file_exists)
    throw journal_error(path, "cannot create: " + ec.message());
}

} // namespace

journal journal::open(const std::filesystem::path& path, journal_mode mode) {
  auto p = std::make_unique<impl>();
  p->path = path;
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (mode == journal_mode::create && exists)
    throw journal_error(path, "already exists; a new journal never replaces one");
  if (mode == journal_mode::open && !exists)
    throw journal_error(path, "no such journal");
  if (exists && !std::filesystem::is_regular_file(path, ec))
    throw journal_error(path, "not a regular file");
  if (!exists) {
    // Made complete under another name and linked into place, so that nobody (a reader
    // polling for the file, another head) ever opens a half-made journal.
    create_file(path);
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &p->db, flags, nullptr) != SQLITE_OK)
    p->fail("cannot open");
  sqlite3_extended_result_codes(p->db, 1);
  sqlite3_busy_timeout(p->db, 10000);
  bool upgrade_from_1 = false;
  {
    // Reading the schema is the first access: a file that is not SQLite fails here.
    bool has_meta = false;
    {
      const int rc = sqlite3_exec(p->db, "SELECT 1 FROM sqlite_master LIMIT 1", nullptr,
                                  nullptr, nullptr);
      if (rc != SQLITE_OK)
        throw journal_error(path, std::string("not an SQLite database (") + sqlite3_errmsg(p->db)
                                    + ")");
      statement st(*p, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
      has_meta = st.step() && st.integer(0) == 1;
    }
    if (!has_meta)
      throw journal_error(path, "an SQLite database but not a mummi journal (no 'meta' table)");
    statement st(*p, "SELECT value FROM meta WHERE key='schema_version'");
    if (!st.step())
      throw journal_error(path, "not a mummi journal (no schema_version in 'meta')");
    const std::string v = st.text(0);
    if (v != "1" && v != std::to_string(schema_version))
      throw journal_error(path, "journal schema version " + v + "; this mummi reads versions 1 "
                                  "to " + std::to_string(schema_version));
    upgrade_from_1 = v == "1";
  }
  p->exec("PRAGMA journal_mode=WAL");
  p->exec("PRAGMA synchronous=FULL");
  if (upgrade_from_1) {
    p->exec("BEGIN IMMEDIATE");
    p->exec(jobs_sql);
    p->exec("UPDATE meta SET value = '2' WHERE key = 'schema_version'");
    p->exec("COMMIT");
  }
  return journal(std::move(p));
}

journal::journal(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
journal::journal(journal&&) noexcept = default;
journal& journal::operator=(journal&&) noexcept = default;
journal::~journal() = default;

const std::filesystem::path& journal::path() const noexcept {
  return impl_->path;
}

void journal::begin() {
  if (impl_->depth++ == 0) {
    try {
      impl_->exec("BEGIN IMMEDIATE");
    } catch (...) {
      impl_->depth = 0;
      throw;
    }
  }
}

void journal::commit() {
  if (--impl_->depth == 0)
    impl_->exec("COMMIT");
}

void journal::rollback() noexcept {
  if (impl_->depth > 0) {
    impl_->depth = 0;
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

journal::transaction::transaction(journal& j) : journal_(&j) {
  j.begin();
}

journal::transaction::~transaction() {
  if (!done_)
    journal_->rollback();
}

void journal::transaction::commit() {
  done_ = true;
  journal_->commit();
}

std::size_t journal::add_structures(std::span<const messages::structure> structures,
                                    structure_state state) {
  transaction t(*this);
  statement st(*impl_, "INSERT OR IGNORE INTO structures(id, sampler, lambda, latent, coords, "
                       "epot_kj_mol, fmax_kj_mol_nm, state, request_id, updated_unix_ns) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)");
  std::size_t added = 0;
  const std::int64_t now = now_unix_ns();
  for (const auto& s : structures) {
    st.bind(1, static_cast<std::int64_t>(s.id))
      .bind(2, std::string_view(s.sampler))
      .bind(3, static_cast<double>(s.lambda))
      .bind_blob(4, floats_bytes(s.latent))
      .bind_blob(5, floats_bytes(s.coords_nm))
      .bind(6, s.epot_kj_mol)
      .bind(7, s.fmax_kj_mol_nm)
      .bind(8, static_cast<std::int64_t>(state))
      .bind(9, now);
    st.run();
    added += static_cast<std::size_t>(sqlite3_changes(impl_->db));
  }
  t.commit();
  return added;
}

void journal::update_structure(const messages::structure& s, structure_state state) {
  statement st(*impl_, "UPDATE structures SET coords = ?2, epot_kj_mol = ?3, fmax_kj_mol_nm = ?4, "
                       "state = ?5, updated_unix_ns = ?6 WHERE id = ?1");
  st.bind(1, static_cast<std::int64_t>(s.id))
    .bind_blob(2, floats_bytes(s.coords_nm))
    .bind(3, s.epot_kj_mol)
    .bind(4, s.fmax_kj_mol_nm)
    .bind(5, static_cast<std::int64_t>(state))
    .bind(6, now_unix_ns());
  st.run();
  if (sqlite3_changes(impl_->db) != 1)
    throw journal_error(impl_->path, "no structure " + std::to_string(s.id) + " to update");
}

void journal::mark_delivered(std::span<const std::uint64_t> ids, std::uint64_t request_id) {
  transaction t(*this);
  statement st(*impl_, "UPDATE structures SET state = ?2, request_id = ?3, updated_unix_ns = ?4 "
                       "WHERE id = ?1");
  const std::int64_t now = now_unix_ns();
  for (const std::uint64_t id : ids) {
    st.bind(1, static_cast<std::int64_t>(id))
      .bind(2, static_cast<std::int64_t>(structure_state::delivered))
      .bind(3, static_cast<std::int64_t>(request_id))
      .bind(4, now);
    st.run();
    if (sqlite3_changes(impl_->db) != 1)
      throw journal_error(impl_->path, "no structure " + std::to_string(id) + " to deliver");
  }
  t.commit();
}

std::vector<journal_structure> journal::structures(structure_state state) const {
  const std::string sql
    = std::string("SELECT ") + structure_columns + " FROM structures WHERE state = ?1 ORDER BY id";
  statement st(*impl_, sql.c_str());
  st.bind(1, static_cast<std::int64_t>(state));
  std::vector<journal_structure> out;
  while (st.step())
    out.push_back(read_structure(st, *impl_));
  return out;
}

std::optional<journal_structure> journal::find_structure(std::uint64_t id) const {
  const std::string sql = std::string("SELECT ") + structure_columns
    + " FROM structures WHERE id = ?1";
  statement st(*impl_, sql.c_str());
  st.bind(1, static_cast<std::int64_t>(id));
  if (!st.step())
    return std::nullopt;
  return read_structure(st, *impl_);
}

std::size_t journal::count(structure_state state) const {
  statement st(*impl_, "SELECT count(*) FROM structures WHERE state = ?1");
  st.bind(1, static_cast<std::int64_t>(state));
  st.step();
  return static_cast<std::size_t>(st.integer(0));
}

std::uint64_t journal::log_select(std::uint32_t count) {
  statement st(*impl_, "INSERT INTO sampler_log(op, count, body) VALUES (?1, ?2, NULL)");
  st.bind(1, static_cast<std::int64_t>(sampler_op::select)).bind(2, std::int64_t{count});
  st.run();
  return static_cast<std::uint64_t>(sqlite3_last_insert_rowid(impl_->db));
}

std::uint64_t journal::log_message(sampler_op op, const messages::body& body) {
  if (op == sampler_op::select)
    throw std::invalid_argument("journal::log_message: a select carries no message");
  messages::envelope e;
  e.payload = body;
  const std::vector<std::byte> bytes = messages::encode(e);
  statement st(*impl_, "INSERT INTO sampler_log(op, count, body) VALUES (?1, 0, ?2)");
  st.bind(1, static_cast<std::int64_t>(op))
    .bind_blob(2, {reinterpret_cast<const char*>(bytes.data()), bytes.size()});
  st.run();
  return static_cast<std::uint64_t>(sqlite3_last_insert_rowid(impl_->db));
}

std::vector<sampler_log_entry> journal::sampler_log(std::uint64_t after) const {
  statement st(*impl_, "SELECT seq, op, count, body FROM sampler_log WHERE seq > ?1 ORDER BY seq");
  st.bind(1, static_cast<std::int64_t>(after));
  std::vector<sampler_log_entry> out;
  while (st.step()) {
    sampler_log_entry e;
    e.seq = static_cast<std::uint64_t>(st.integer(0));
    e.op = static_cast<sampler_op>(st.integer(1));
    e.count = static_cast<std::uint32_t>(st.integer(2));
    if (e.op != sampler_op::select) {
      const std::string bytes = st.blob(3);
      auto decoded = messages::decode(
        {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()});
      if (!decoded)
        throw journal_error(impl_->path, "sampler_log seq " + std::to_string(e.seq)
                                           + ": the message does not decode: "
                                           + messages::to_string(decoded.error()));
      if (!decoded->payload)
        throw journal_error(impl_->path,
                            "sampler_log seq " + std::to_string(e.seq) + ": no message body");
      e.body = std::move(*decoded->payload);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::uint64_t journal::last_sampler_seq() const {
  statement st(*impl_, "SELECT coalesce(max(seq), 0) FROM sampler_log");
  st.step();
  return static_cast<std::uint64_t>(st.integer(0));
}

void journal::put_sampler_checkpoint(const sampler_checkpoint& c) {
  transaction t(*this);
  statement st(*impl_, "INSERT OR REPLACE INTO sampler_checkpoints(seq, sampler, bytes, unix_ns) "
                       "VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, static_cast<std::int64_t>(c.seq))
    .bind(2, std::string_view(c.sampler))
    .bind_blob(3, c.bytes)
    .bind(4, now_unix_ns());
  st.run();
  impl_->exec("DELETE FROM sampler_checkpoints WHERE seq < (SELECT min(seq) FROM "
              "(SELECT seq FROM sampler_checkpoints ORDER BY seq DESC LIMIT 2))");
  t.commit();
}

std::optional<sampler_checkpoint> journal::latest_sampler_checkpoint() const {
  statement st(*impl_, "SELECT seq, sampler, bytes FROM sampler_checkpoints "
                       "ORDER BY seq DESC LIMIT 1");
  if (!st.step())
    return std::nullopt;
  return sampler_checkpoint{static_cast<std::uint64_t>(st.integer(0)), st.text(1), st.blob(2)};
}

const char* to_string(job_state s) noexcept {
  switch (s) {
    case job_state::queued: return "queued";
    case job_state::running: return "running";
    case job_state::succeeded: return "succeeded";
    case job_state::failed: return "failed";
    case job_state::cancelled: return "cancelled";
  }
  return "unknown";
}

void journal::put_job(const journal_job& j) {
  statement st(*impl_, "INSERT OR REPLACE INTO jobs(job_id, kind, structure_id, state, node, "
                       "attempt, seed, input_dir, work_dir, target_ns, ns_done, reason, message, "
                       "updated_unix_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                       "?12, ?13, ?14)");
  st.bind(1, static_cast<std::int64_t>(j.job_id))
    .bind(2, static_cast<std::int64_t>(j.kind))
    .bind(3, static_cast<std::int64_t>(j.structure_id))
    .bind(4, static_cast<std::int64_t>(j.state))
    .bind(5, std::string_view(j.node))
    .bind(6, static_cast<std::int64_t>(j.attempt))
    .bind(7, static_cast<std::int64_t>(j.seed))
    .bind(8, std::string_view(j.input_dir))
    .bind(9, std::string_view(j.work_dir))
    .bind(10, j.target_ns)
    .bind(11, j.ns_done)
    .bind(12, static_cast<std::int64_t>(j.reason))
    .bind(13, std::string_view(j.message))
    .bind(14, now_unix_ns());
  st.run();
}

std::vector<journal_job> journal::jobs() const {
  statement st(*impl_, "SELECT job_id, kind, structure_id, state, node, attempt, seed, input_dir, "
                       "work_dir, target_ns, ns_done, reason, message FROM jobs ORDER BY job_id");
  std::vector<journal_job> out;
  while (st.step()) {
    journal_job j;
    j.job_id = static_cast<std::uint64_t>(st.integer(0));
    j.kind = static_cast<messages::job_kind>(st.integer(1));
    j.structure_id = static_cast<std::uint64_t>(st.integer(2));
    j.state = static_cast<job_state>(st.integer(3));
    j.node = st.text(4);
    j.attempt = static_cast<std::uint32_t>(st.integer(5));
    j.seed = static_cast<std::uint64_t>(st.integer(6));
    j.input_dir = st.text(7);
    j.work_dir = st.text(8);
    j.target_ns = st.real(9);
    j.ns_done = st.real(10);
    const auto reason = st.integer(11);
    if (reason < 0 || reason > static_cast<std::int64_t>(messages::failure_reason::other))
      throw journal_error(impl_->path, "job " + std::to_string(j.job_id) + " has failure reason "
                                         + std::to_string(reason));
    j.reason = static_cast<messages::failure_reason>(reason);
    j.message = st.text(12);
    out.push_back(std::move(j));
  }
  return out;
}

std::uint64_t journal::last_job_id() const {
  statement st(*impl_, "SELECT coalesce(max(job_id), 0) FROM jobs");
  st.step();
  return static_cast<std::uint64_t>(st.integer(0));
}

void journal::start_attempt(std::uint64_t job_id, std::uint32_t attempt, const std::string& node) {
  statement st(*impl_, "INSERT OR REPLACE INTO attempts(job_id, attempt, node, started_unix_ns) "
                       "VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, static_cast<std::int64_t>(job_id))
    .bind(2, static_cast<std::int64_t>(attempt))
    .bind(3, std::string_view(node))
    .bind(4, now_unix_ns());
  st.run();
}

void journal::end_attempt(std::uint64_t job_id, std::uint32_t attempt,
                          messages::job_status status, messages::failure_reason reason,
                          const std::string& message) {
  statement st(*impl_, "UPDATE attempts SET ended_unix_ns = ?3, status = ?4, reason = ?5, "
                       "message = ?6 WHERE job_id = ?1 AND attempt = ?2");
  st.bind(1, static_cast<std::int64_t>(job_id))
    .bind(2, static_cast<std::int64_t>(attempt))
    .bind(3, now_unix_ns())
    .bind(4, static_cast<std::int64_t>(status))
    .bind(5, static_cast<std::int64_t>(reason))
    .bind(6, std::string_view(message));
  st.run();
}

std::size_t journal::attempt_count(std::uint64_t job_id) const {
  statement st(*impl_, "SELECT count(*) FROM attempts WHERE job_id = ?1");
  st.bind(1, static_cast<std::int64_t>(job_id));
  st.step();
  return static_cast<std::size_t>(st.integer(0));
}

void journal::add_event(std::string_view source, std::string_view kind, std::string_view text) {
  statement st(*impl_, "INSERT INTO events(unix_ns, source, kind, text) VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, now_unix_ns()).bind(2, source).bind(3, kind).bind(4, text);
  st.run();
}

std::vector<journal_event> journal::events() const {
  statement st(*impl_, "SELECT seq, unix_ns, source, kind, text FROM events ORDER BY seq");
  std::vector<journal_event> out;
  while (st.step())
    out.push_back({static_cast<std::uint64_t>(st.integer(0)), st.integer(1), st.text(2),
                   st.text(3), st.text(4)});
  return out;
}

} // namespace mummi::coupling
