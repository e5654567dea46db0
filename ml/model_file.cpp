#include "mummi/ml/model_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

namespace mummi::ml {

namespace {

// The format stores integers and floats little-endian; the code below copies them as they lie
// in memory, which is right only on a little-endian host.
static_assert(std::endian::native == std::endian::little,
              "the model file code assumes a little-endian host");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559);

using json = nlohmann::json;

constexpr std::array<char, 8> magic = {'M', 'U', 'M', 'M', 'I', '-', 'A', 'E'};
constexpr std::uint64_t preamble_bytes = 16; ///< magic, version, header length
constexpr std::uint64_t trailer_bytes = 8;   ///< FNV-1a-64
constexpr std::uint64_t max_header_bytes = 16u << 20;

// --- FNV-1a-64 ------------------------------------------------------------------------------

constexpr std::uint64_t fnv_offset_basis = 0xcbf29ce484222325ULL;
constexpr std::uint64_t fnv_prime = 0x100000001b3ULL;

class fnv1a64 {
public:
  void add(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = h_;
    for (std::size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= fnv_prime;
    }
    h_ = h;
  }
  std::uint64_t value() const noexcept {
    return h_;
  }

private:
  std::uint64_t h_ = fnv_offset_basis;
};

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string system_message(int error) {
  return std::generic_category().message(error);
}

// --- Header encoding ------------------------------------------------------------------------

const char* activation_name(activation a) {
  switch (a) {
    case activation::relu: return "relu";
    case activation::elu: return "elu";
    case activation::tanh: return "tanh";
  }
  return "?";
}

std::optional<activation> activation_from(std::string_view s) {
  if (s == "relu")
    return activation::relu;
  if (s == "elu")
    return activation::elu;
  if (s == "tanh")
    return activation::tanh;
  return std::nullopt;
}

/// JSON has no NaN or infinity; those are written as the strings "nan", "inf", "-inf". Finite
/// doubles are written in their shortest form that reads back to the same bits.
json encode_double(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  return v;
}

/// Elements of a tensor of this shape; nullopt with `problem` set for a negative dimension or
/// an element count that overflows.
std::optional<std::uint64_t> element_count(const std::vector<std::int64_t>& shape,
                                           std::string& problem) {
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      problem
        = "dimension " + std::to_string(i) + " is negative (" + std::to_string(shape[i]) + ")";
      return std::nullopt;
    }
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(shape[i]), &n)) {
      problem = "the shape's element count overflows 64 bits";
      return std::nullopt;
    }
  }
  return n;
}

/// The problems, separated by "; ". A hostile header can hold millions; the first 20 are
/// enough to act on.
std::string join_problems(const std::vector<std::string>& problems) {
  constexpr std::size_t shown = 20;
  std::string all;
  for (std::size_t i = 0; i < problems.size() && i < shown; ++i)
    all += (i ? "; " : "") + problems[i];
  if (problems.size() > shown)
    all += "; and " + std::to_string(problems.size() - shown) + " more problems";
  return all;
}

json encode_header(const std::filesystem::path& path, const model_contents& c) {
  const auto& m = c.meta;
  json arch = json::object();
  arch["beads"] = m.arch.beads;
  arch["latent"] = m.arch.latent;
  arch["hidden"] = m.arch.hidden;
  arch["activation"] = activation_name(m.arch.act);
  json prep = json::object();
  prep["centre"] = m.prep.centre;
  prep["align"] = m.prep.align;

  json table = json::array();
  std::uint64_t offset = 0;
  std::vector<std::string> problems;
  for (const auto& [name, t] : c.tensors) {
    std::string problem;
    const auto n = element_count(t.shape, problem);
    if (!n)
      problems.push_back("tensor '" + name + "': " + problem);
    else if (*n != t.values.size())
      problems.push_back("tensor '" + name + "': shape holds " + std::to_string(*n)
                         + " values but it has " + std::to_string(t.values.size()));
    json entry = json::object();
    entry["name"] = name;
    entry["shape"] = t.shape;
    entry["offset"] = offset;
    entry["count"] = t.values.size();
    table.push_back(std::move(entry));
    offset += t.values.size();
  }
  if (!problems.empty())
    throw model_error(path, "cannot write: " + join_problems(problems));

  json h = json::object();
  h["architecture"] = std::move(arch);
  h["preprocessing"] = std::move(prep);
  h["round"] = m.round;
  h["data_digest"] = m.data_digest;
  h["parent_digest"] = m.parent_digest;
  h["training_frames"] = m.training_frames;
  h["validation_rmsd_nm"] = encode_double(m.validation_rmsd_nm);
  h["created_by"] = m.created_by;
  h["tensors"] = std::move(table);
  return h;
}

// --- Writing --------------------------------------------------------------------------------

/// An open file descriptor, closed when the object goes.
class unique_fd {
public:
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int get() const noexcept {
    return fd_;
  }
  /// Closes now; returns the errno of a failed close, 0 otherwise.
  int close() noexcept {
    const int fd = std::exchange(fd_, -1);
    return fd >= 0 && ::close(fd) != 0 ? errno : 0;
  }

private:
  int fd_;
};

/// Writes through a buffer to a file descriptor, hashing every byte it writes.
class hashing_writer {
public:
  hashing_writer(int fd, const std::filesystem::path& path, const std::filesystem::path& tmp)
    : fd_(fd), path_(path), tmp_(tmp) {
    buf_.reserve(capacity);
  }

  void put(const void* data, std::size_t n) {
    hash_.add(data, n);
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const std::size_t take = std::min(n, capacity - buf_.size());
      buf_.insert(buf_.end(), p, p + take);
      p += take;
      n -= take;
      if (buf_.size() == capacity)
        flush();
    }
  }

  /// Appends the hash of everything put so far (not hashed itself) and flushes.
  void finish() {
    const std::uint64_t h = hash_.value();
    const auto* p = reinterpret_cast<const char*>(&h);
    buf_.insert(buf_.end(), p, p + sizeof h);
    flush();
  }

private:
  static constexpr std::size_t capacity = 1u << 20;

  void flush() {
    const char* p = buf_.data();
    std::size_t left = buf_.size();
    while (left > 0) {
      const ssize_t w = ::write(fd_, p, left);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        throw model_error(path_, "cannot write " + tmp_.string() + ": " + system_message(errno));
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    buf_.clear();
  }

  int fd_;
  const std::filesystem::path& path_;
  const std::filesystem::path& tmp_;
  std::vector<char> buf_;
  fnv1a64 hash_;
};

// --- Reading --------------------------------------------------------------------------------

/// Reads exactly `n` bytes at `offset`; returns the number read (less at end of file).
std::size_t read_at(int fd, std::uint64_t offset, void* dst, std::size_t n,
                    const std::filesystem::path& path) {
  auto* p = static_cast<char*>(dst);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      throw model_error(path, "cannot read: " + system_message(errno));
    }
    if (r == 0)
      break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

/// Adds the bytes [from, to) of the file to `h`; false when the file ends before `to`.
bool hash_range(int fd, std::uint64_t from, std::uint64_t to, fnv1a64& h,
                const std::filesystem::path& path) {
  std::vector<char> buf(1u << 20);
  while (from < to) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - from));
    if (read_at(fd, from, buf.data(), n, path) != n)
      return false;
    h.add(buf.data(), n);
    from += n;
  }
  return true;
}

/// Whether the 8 bytes at `end` are the FNV-1a-64 of the bytes before them.
bool checksum_ok_at(int fd, std::uint64_t end, const std::filesystem::path& path) {
  fnv1a64 h;
  std::uint64_t stored = 0;
  return hash_range(fd, 0, end, h, path)
    && read_at(fd, end, &stored, sizeof stored, path) == sizeof stored && stored == h.value();
}

/// One entry of the tensor table, as read.
struct table_entry {
  std::string name;
  std::vector<std::int64_t> shape;
  std::uint64_t offset = 0;
  std::uint64_t count = 0;
};

/// Decodes the header's fields, appending every problem to `problems` (named by their
/// dotted path in the header).
class header_decoder {
public:
  explicit header_decoder(std::vector<std::string>& problems) : problems_(problems) {}

  const json* field(const json& obj, const std::string& where, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end()) {
      problems_.push_back("missing field '" + where + key + "'");
      return nullptr;
    }
    return &*it;
  }

  void mistyped(const std::string& name, const char* want, const json& got) {
    problems_.push_back("field '" + name + "' should be " + want + ", not " + got.type_name());
  }

  template<class T>
  void get_unsigned(const json& obj, const std::string& where, const char* key, T& out) {
    const json* j = field(obj, where, key);
    if (j)
      unsigned_value(*j, where + key, out);
  }

  template<class T>
  bool unsigned_value(const json& j, const std::string& name, T& out) {
    if (!j.is_number_unsigned()) {
      mistyped(name, "an unsigned integer", j);
      return false;
    }
    const auto v = j.get<std::uint64_t>();
    if (v > std::numeric_limits<T>::max()) {
      problems_.push_back("field '" + name + "' is too large (" + std::to_string(v) + ")");
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  void get_bool(const json& obj, const std::string& where, const char* key, bool& out) {
    const json* j = field(obj, where, key);
    if (!j)
      return;
    if (!j->is_boolean())
      mistyped(where + key, "true or false", *j);
    else
      out = j->get<bool>();
  }

  void get_string(const json& obj, const std::string& where, const char* key, std::string& out) {
    const json* j = field(obj, where, key);
    if (!j)
      return;
    if (!j->is_string())
      mistyped(where + key, "a string", *j);
    else
      out = j->get<std::string>();
  }

  void get_double(const json& obj, const std::string& where, const char* key, double& out) {
    const json* j = field(obj, where, key);
    if (!j)
      return;
    if (j->is_number()) {
      out = j->get<double>();
      return;
    }
    if (j->is_string()) {
      const auto& s = j->get_ref<const std::string&>();
      if (s == "nan") {
        out = std::numeric_limits<double>::quiet_NaN();
        return;
      }
      if (s == "inf" || s == "-inf") {
        out = (s == "inf" ? 1 : -1) * std::numeric_limits<double>::infinity();
        return;
      }
    }
    mistyped(where + key, "a number (or \"nan\", \"inf\", \"-inf\")", *j);
  }

  const json* get_object(const json& obj, const std::string& where, const char* key) {
    const json* j = field(obj, where, key);
    if (j && !j->is_object()) {
      mistyped(where + key, "an object", *j);
      return nullptr;
    }
    return j;
  }

  const json* get_array(const json& obj, const std::string& where, const char* key) {
    const json* j = field(obj, where, key);
    if (j && !j->is_array()) {
      mistyped(where + key, "an array", *j);
      return nullptr;
    }
    return j;
  }

  void problem(std::string p) {
    problems_.push_back(std::move(p));
  }

private:
  std::vector<std::string>& problems_;
};

model_metadata decode_metadata(const json& h, header_decoder& d) {
  model_metadata m;
  if (const json* a = d.get_object(h, "", "architecture")) {
    const std::string w = "architecture.";
    d.get_unsigned(*a, w, "beads", m.arch.beads);
    d.get_unsigned(*a, w, "latent", m.arch.latent);
    if (const json* hidden = d.get_array(*a, w, "hidden")) {
      m.arch.hidden.clear();
      for (std::size_t i = 0; i < hidden->size(); ++i) {
        std::size_t v = 0;
        if (d.unsigned_value((*hidden)[i], w + "hidden[" + std::to_string(i) + "]", v))
          m.arch.hidden.push_back(v);
      }
    }
    if (const json* act = d.field(*a, w, "activation")) {
      std::optional<activation> v;
      if (act->is_string())
        v = activation_from(act->get_ref<const std::string&>());
      if (v)
        m.arch.act = *v;
      else
        d.problem("field 'architecture.activation' should be \"relu\", \"elu\" or \"tanh\", not "
                  + act->dump());
    }
  }
  if (const json* p = d.get_object(h, "", "preprocessing")) {
    d.get_bool(*p, "preprocessing.", "centre", m.prep.centre);
    d.get_bool(*p, "preprocessing.", "align", m.prep.align);
  }
  d.get_unsigned(h, "", "round", m.round);
  d.get_string(h, "", "data_digest", m.data_digest);
  d.get_string(h, "", "parent_digest", m.parent_digest);
  d.get_unsigned(h, "", "training_frames", m.training_frames);
  d.get_double(h, "", "validation_rmsd_nm", m.validation_rmsd_nm);
  d.get_string(h, "", "created_by", m.created_by);
  return m;
}

/// Decodes and checks the tensor table: every entry's fields, count = product of the shape,
/// unique names, offsets that follow one another without gap or overlap. `payload_floats` is
/// the sum of the counts; nullopt when it overflows.
std::vector<table_entry> decode_table(const json& h, header_decoder& d,
                                      std::optional<std::uint64_t>& payload_floats) {
  std::vector<table_entry> out;
  payload_floats = 0;
  const json* table = d.get_array(h, "", "tensors");
  if (!table)
    return out;
  std::set<std::string> names;
  std::uint64_t end = 0; // where the next tensor must start, in floats
  for (std::size_t i = 0; i < table->size(); ++i) {
    const json& e = (*table)[i];
    const std::string w = "tensors[" + std::to_string(i) + "]";
    if (!e.is_object()) {
      d.mistyped(w, "an object", e);
      continue;
    }
    table_entry t;
    bool ok = true;
    if (const json* name = d.field(e, w + ".", "name")) {
      if (!name->is_string()) {
        d.mistyped(w + ".name", "a string", *name);
        ok = false;
      } else {
        t.name = name->get<std::string>();
      }
    } else {
      ok = false;
    }
    const std::string label = ok ? "tensor '" + t.name + "' (" + w + ")" : w;
    if (ok && !names.insert(t.name).second)
      d.problem("tensor table: duplicate name '" + t.name + "' at " + w);
    if (const json* shape = d.get_array(e, w + ".", "shape")) {
      for (std::size_t k = 0; k < shape->size(); ++k) {
        const json& dim = (*shape)[k];
        if (!dim.is_number_integer()) {
          d.mistyped(w + ".shape[" + std::to_string(k) + "]", "an integer", dim);
          ok = false;
        } else if (dim.is_number_unsigned()
                   && dim.get<std::uint64_t>()
                     > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          d.problem("tensor table: " + label + ": dimension " + std::to_string(k)
                    + " is too large");
          ok = false;
        } else {
          t.shape.push_back(dim.get<std::int64_t>());
        }
      }
    } else {
      ok = false;
    }
    const json* count = d.field(e, w + ".", "count");
    const bool have_count = count && d.unsigned_value(*count, w + ".count", t.count);
    const json* offset = d.field(e, w + ".", "offset");
    const bool have_offset = offset && d.unsigned_value(*offset, w + ".offset", t.offset);
    if (ok && have_count) {
      std::string problem;
      const auto n = element_count(t.shape, problem);
      if (!n)
        d.problem("tensor table: " + label + ": " + problem);
      else if (*n != t.count)
        d.problem("tensor table: " + label + ": count " + std::to_string(t.count)
                  + " is not the product of its shape (" + std::to_string(*n) + ")");
    }
    if (have_offset && t.offset != end)
      d.problem("tensor table: " + label + ": offset " + std::to_string(t.offset)
                + (t.offset < end ? " overlaps the tensor before it"
                                  : " leaves a gap after the tensor before it")
                + " (tensors lie in table order without padding; expected offset "
                + std::to_string(end) + ")");
    if (have_count) {
      if (__builtin_add_overflow(end, t.count, &end)) {
        d.problem("tensor table: the element counts overflow 64 bits");
        payload_floats = std::nullopt;
        return out;
      }
    }
    out.push_back(std::move(t));
  }
  payload_floats = end;
  return out;
}

} // namespace

// --- Public functions -----------------------------------------------------------------------

void write_model_file(const std::filesystem::path& path, const model_contents& contents) {
  std::string header;
  try {
    header = encode_header(path, contents).dump();
  } catch (const json::exception& e) {
    // Strings (digests, created_by, tensor names) that are not valid UTF-8.
    throw model_error(path, std::string("cannot encode the header: ") + e.what());
  }
  if (header.size() > max_header_bytes)
    throw model_error(path,
                      "cannot write: the header (" + std::to_string(header.size())
                        + " bytes) exceeds the limit of 16 MiB");

  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0)
    throw model_error(path, "cannot create " + tmp.string() + ": " + system_message(errno));
  try {
    hashing_writer out(fd.get(), path, tmp);
    out.put(magic.data(), magic.size());
    const std::uint32_t version = model_format_version;
    out.put(&version, sizeof version);
    const auto header_len = static_cast<std::uint32_t>(header.size());
    out.put(&header_len, sizeof header_len);
    out.put(header.data(), header.size());
    for (const auto& [name, t] : contents.tensors)
      out.put(t.values.data(), t.values.size() * sizeof(float));
    out.finish();
    if (::fsync(fd.get()) != 0)
      throw model_error(path,
                        "cannot write " + tmp.string() + " (fsync): " + system_message(errno));
    if (const int err = fd.close())
      throw model_error(path, "cannot write " + tmp.string() + " (close): " + system_message(err));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw model_error(path, "cannot rename " + tmp.string() + " to it: " + system_message(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable. Some file systems refuse fsync on a directory; the file's
  // content is already on disk, so that is not an error.
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  unique_fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0)
    ::fsync(dfd.get());
}

model_contents read_model_file(const std::filesystem::path& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    throw model_error(path, "cannot open: " + system_message(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw model_error(path, "cannot stat: " + system_message(errno));
  if (!S_ISREG(st.st_mode))
    throw model_error(path, "not a mummi model file: not a regular file");
  const auto size = static_cast<std::uint64_t>(st.st_size);

  // Preamble: magic, format version, header length.
  std::array<unsigned char, preamble_bytes> pre{};
  const std::size_t got = read_at(fd.get(), 0, pre.data(), pre.size(), path);
  const std::size_t magic_got = std::min(got, magic.size());
  if (std::memcmp(pre.data(), magic.data(), magic_got) != 0) {
    if (got >= 2 && pre[0] == 'P' && pre[1] == 'K')
      throw model_error(path,
                        "not a mummi model file: it looks like a TorchScript archive (a "
                        "ZIP file); mummi reads only its own model files");
    throw model_error(path, "not a mummi model file (it does not start with \"MUMMI-AE\")");
  }
  if (got < preamble_bytes)
    throw model_error(path,
                      "truncated: the preamble needs " + std::to_string(preamble_bytes)
                        + " bytes, the file has " + std::to_string(size));
  std::uint32_t version = 0;
  std::uint32_t header_len = 0;
  std::memcpy(&version, pre.data() + 8, sizeof version);
  std::memcpy(&header_len, pre.data() + 12, sizeof header_len);
  if (version > model_format_version)
    throw model_error(path,
                      "written by a newer mummi: format " + std::to_string(version)
                        + ", this build reads " + std::to_string(model_format_version));
  if (version == 0)
    throw model_error(path,
                      "corrupt: format version 0 does not exist (this build reads "
                        + std::to_string(model_format_version) + ")");
  if (header_len > max_header_bytes)
    throw model_error(path,
                      "unreasonable header length " + std::to_string(header_len)
                        + " bytes (the limit is 16 MiB); the file is corrupt");
  const std::uint64_t min_size = preamble_bytes + header_len + trailer_bytes;
  if (size < min_size)
    throw model_error(path,
                      "truncated: the header length asks for at least " + std::to_string(min_size)
                        + " bytes, the file has " + std::to_string(size));

  // Header.
  std::string text(header_len, '\0');
  if (read_at(fd.get(), preamble_bytes, text.data(), text.size(), path) != text.size())
    throw model_error(path, "truncated while reading: the file shrank");
  const auto corrupt_note = [&]() -> std::string {
    return checksum_ok_at(fd.get(), size - trailer_bytes, path)
      ? ""
      : " (and the checksum does not match: the file is corrupt)";
  };
  json h;
  try {
    h = json::parse(text);
  } catch (const json::exception& e) {
    throw model_error(path, std::string("malformed header: ") + e.what() + corrupt_note());
  }
  if (!h.is_object())
    throw model_error(path,
                      std::string("malformed header: a JSON ") + h.type_name() + ", not an object"
                        + corrupt_note());
  std::vector<std::string> problems;
  header_decoder d(problems);
  model_contents c;
  c.meta = decode_metadata(h, d);
  std::optional<std::uint64_t> payload_floats;
  const auto table = decode_table(h, d, payload_floats);
  if (!problems.empty())
    throw model_error(path, "bad header: " + join_problems(problems) + corrupt_note());

  // Sizes: the header says how long the file is.
  std::uint64_t expected = 0;
  if (*payload_floats > (std::numeric_limits<std::uint64_t>::max() - min_size) / sizeof(float))
    throw model_error(path, "unreasonable tensor sizes: the payload would exceed 2^64 bytes");
  expected = min_size + *payload_floats * sizeof(float);
  if (size < expected)
    throw model_error(path,
                      "truncated: the header describes " + std::to_string(expected)
                        + " bytes, the file has " + std::to_string(size));
  if (size > expected) {
    // Either bytes were appended to an intact file, or the header no longer matches the file.
    const bool intact = checksum_ok_at(fd.get(), expected - trailer_bytes, path);
    if (intact)
      throw model_error(path,
                        "trailing garbage: " + std::to_string(size - expected)
                          + " bytes after the checksum (the header describes "
                          + std::to_string(expected) + " bytes)");
    throw model_error(path,
                      "corrupt: the header describes " + std::to_string(expected)
                        + " bytes, the file has " + std::to_string(size)
                        + ", and the checksum does not match");
  }

  // Payload, then the checksum.
  fnv1a64 hash;
  hash.add(pre.data(), pre.size());
  hash.add(text.data(), text.size());
  std::uint64_t pos = min_size - trailer_bytes;
  for (const auto& t : table) {
    named_tensor nt;
    nt.shape = t.shape;
    nt.values.resize(static_cast<std::size_t>(t.count));
    const std::size_t bytes = nt.values.size() * sizeof(float);
    if (read_at(fd.get(), pos, nt.values.data(), bytes, path) != bytes)
      throw model_error(path, "truncated while reading: the file shrank");
    hash.add(nt.values.data(), bytes);
    pos += bytes;
    c.tensors.emplace(t.name, std::move(nt));
  }
  std::uint64_t stored = 0;
  if (read_at(fd.get(), pos, &stored, sizeof stored, path) != sizeof stored)
    throw model_error(path, "truncated while reading: the file shrank");
  if (stored != hash.value())
    throw model_error(path,
                      "corrupt: checksum mismatch (stored fnv1a64 " + hex64(stored) + ", computed "
                        + hex64(hash.value()) + ")");
  return c;
}

bool looks_like_torchscript(const std::filesystem::path& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return false;
  std::array<unsigned char, 4> head{};
  std::size_t got = 0;
  try {
    got = read_at(fd.get(), 0, head.data(), head.size(), path);
  } catch (const model_error&) {
    return false;
  }
  // A ZIP local file header, as torch.jit.save writes first.
  return got == head.size() && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
}

std::string frames_digest(const std::vector<float>& values,
                          const std::vector<std::int32_t>& labels) {
  fnv1a64 h;
  h.add(values.data(), values.size() * sizeof(float));
  h.add(labels.data(), labels.size() * sizeof(std::int32_t));
  return "fnv1a64:" + hex64(h.value());
}

} // namespace mummi::ml
