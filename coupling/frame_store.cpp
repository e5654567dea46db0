#include "mummi/coupling/frame_store.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "hdf5_handle.hpp"

namespace mummi::coupling {

namespace {

constexpr long long supported_format = 1;
constexpr const char* group_name = "frames";
constexpr const char* positions_name = "positions";
/// HDF5 refuses chunks of 4 GiB or more.
constexpr std::uint64_t max_chunk_bytes = (std::uint64_t{1} << 32) - 1;

/// One dataset of the layout: its name under /frames and the element type it must have.
struct column {
  const char* name;
  H5T_class_t type_class;
  std::size_t bytes;
  const char* type_name;
  int rank;
};

constexpr std::array<column, 5> columns{{
  {positions_name, H5T_FLOAT, 4, "float32", 3},
  {"step", H5T_INTEGER, 8, "int64", 1},
  {"time_ps", H5T_FLOAT, 8, "float64", 1},
  {"label", H5T_INTEGER, 4, "int32", 1},
  {"source", H5T_INTEGER, 8, "int64", 1},
}};

/// The file (little-endian, as written) and memory (native) types of column `i`.
hid_t file_type(std::size_t i) {
  switch (i) {
    case 0: return H5T_IEEE_F32LE;
    case 1:
    case 4: return H5T_STD_I64LE;
    case 2: return H5T_IEEE_F64LE;
    default: return H5T_STD_I32LE;
  }
}
hid_t memory_type(std::size_t i) {
  switch (i) {
    case 0: return H5T_NATIVE_FLOAT;
    case 1:
    case 4: return H5T_NATIVE_INT64;
    case 2: return H5T_NATIVE_DOUBLE;
    default: return H5T_NATIVE_INT32;
  }
}

std::string object_name(const column& c) {
  return std::string("/") + group_name + "/" + c.name;
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : separator) + p;
  return out;
}

/// A short name of an HDF5 datatype for messages: "float32", "uint16", "string", ...
std::string describe_type(hid_t type) {
  const auto size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int")
        + std::to_string(size * 8);
    case H5T_FLOAT: return "float" + std::to_string(size * 8);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    default: return "an unsupported type";
  }
}

std::string frame_range(std::size_t first, std::size_t count) {
  return "frames " + std::to_string(first) + ".." + std::to_string(first + count - 1);
}

/// A file access property list asking for the newest file format (needed for SWMR).
h5::plist latest_format_access(const std::filesystem::path& path) {
  auto fapl = h5::checked<h5::plist>(H5Pcreate(H5P_FILE_ACCESS), path,
                                     "cannot make a file access property list");
  h5::check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), path,
            "cannot ask for the latest file format");
  return fapl;
}

void write_int_attribute(const std::filesystem::path& path, hid_t object, const char* name,
                         int value) {
  const auto what = std::string("cannot write attribute ") + name;
  auto space = h5::checked<h5::dataspace>(H5Screate(H5S_SCALAR), path, what);
  auto attr = h5::checked<h5::attribute>(
    H5Acreate2(object, name, H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path, what);
  h5::check(H5Awrite(attr.get(), H5T_NATIVE_INT, &value), path, what);
}

void write_string_attribute(const std::filesystem::path& path, hid_t object, const char* name,
                            const std::string& value) {
  const auto what = std::string("cannot write attribute ") + name;
  auto type = h5::checked<h5::datatype>(H5Tcopy(H5T_C_S1), path, what);
  h5::check(H5Tset_size(type.get(), value.size() + 1), path, what);
  h5::check(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), path, what);
  h5::check(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, what);
  auto space = h5::checked<h5::dataspace>(H5Screate(H5S_SCALAR), path, what);
  auto attr = h5::checked<h5::attribute>(
    H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path, what);
  h5::check(H5Awrite(attr.get(), type.get(), value.c_str()), path, what);
}

/// Opens attribute `name` of `object` if it exists, holds one value and is of class `wanted`
/// (`wanted_name` in messages), setting `type` to its type; else records why not.
h5::attribute open_scalar_attribute(hid_t object, const char* name, H5T_class_t wanted,
                                    const char* wanted_name, h5::datatype& type,
                                    std::vector<std::string>& problems) {
  const auto where = std::string("/") + group_name + " attribute " + name;
  const auto exists = H5Aexists(object, name);
  if (exists <= 0) {
    problems.push_back(where + ": missing");
    return {};
  }
  h5::attribute attr(H5Aopen(object, name, H5P_DEFAULT));
  if (!attr) {
    problems.push_back(where + ": cannot be opened");
    return {};
  }
  h5::dataspace space(H5Aget_space(attr.get()));
  if (!space || H5Sget_simple_extent_npoints(space.get()) != 1) {
    problems.push_back(where + ": holds more or less than one value");
    return {};
  }
  type = h5::datatype(H5Aget_type(attr.get()));
  if (!type || H5Tget_class(type.get()) != wanted) {
    problems.push_back(where + ": is " + (type ? describe_type(type.get()) : "unreadable")
                       + ", expected " + wanted_name);
    return {};
  }
  return attr;
}

/// The value of an integer attribute, or nothing (with the problem recorded).
bool read_int_attribute(hid_t object, const char* name, long long& value,
                        std::vector<std::string>& problems) {
  h5::datatype type;
  auto attr = open_scalar_attribute(object, name, H5T_INTEGER, "an integer", type, problems);
  if (!attr)
    return false;
  const auto where = std::string("/") + group_name + " attribute " + name;
  if (H5Aread(attr.get(), H5T_NATIVE_LLONG, &value) < 0) {
    problems.push_back(where + ": cannot be read");
    return false;
  }
  return true;
}

/// The value of a string attribute (fixed or variable length), or nothing (problem recorded).
bool read_string_attribute(hid_t object, const char* name, std::string& value,
                           std::vector<std::string>& problems) {
  h5::datatype type;
  auto attr = open_scalar_attribute(object, name, H5T_STRING, "a string", type, problems);
  if (!attr)
    return false;
  const auto where = std::string("/") + group_name + " attribute " + name;
  // HDF5 converts no string between character sets: read in the set the file uses.
  h5::datatype memory(H5Tcopy(H5T_C_S1));
  if (!memory || H5Tset_cset(memory.get(), H5Tget_cset(type.get())) < 0) {
    problems.push_back(where + ": cannot be read");
    return false;
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    char* text = nullptr;
    if (H5Tset_size(memory.get(), h5::variable_size) < 0
        || H5Aread(attr.get(), memory.get(), static_cast<void*>(&text)) < 0) {
      problems.push_back(where + ": cannot be read");
      return false;
    }
    value = text != nullptr ? text : "";
    H5free_memory(text);
    return true;
  }
  const auto size = H5Tget_size(type.get());
  std::string buffer(size, '\0');
  if (H5Tset_size(memory.get(), size) < 0 || H5Tset_strpad(memory.get(), H5T_STR_NULLPAD) < 0
      || H5Aread(attr.get(), memory.get(), buffer.data()) < 0) {
    problems.push_back(where + ": cannot be read");
    return false;
  }
  value = buffer.substr(0, buffer.find('\0'));
  return true;
}

/// The dimensions of a dataset and their maxima.
struct dataset_extent {
  int rank = 0;
  std::array<hsize_t, 3> dims{};
  std::array<hsize_t, 3> max{};
};

/// Checks column `i` under /frames (exists, is a dataset, element type, rank, per-frame
/// dimensions, extendible when appending); returns its open handle and extent, or records
/// every problem.
h5::dataset inspect_column(hid_t group, std::size_t i, frame_store::mode how, dataset_extent& ext,
                           std::vector<std::string>& problems) {
  const auto& c = columns[i];
  const auto where = object_name(c);
  if (H5Lexists(group, c.name, H5P_DEFAULT) <= 0) {
    problems.push_back(where + ": missing");
    return {};
  }
  h5::dataset dset;
  {
    const hid_t object = H5Oopen(group, c.name, H5P_DEFAULT);
    if (object < 0) {
      problems.push_back(where + ": cannot be opened");
      return {};
    }
    if (H5Iget_type(object) != H5I_DATASET) {
      static_cast<void>(H5Oclose(object));
      problems.push_back(where + ": not a dataset");
      return {};
    }
    dset = h5::dataset(object);
  }
  bool ok = true;
  h5::datatype type(H5Dget_type(dset.get()));
  const bool type_ok = type && H5Tget_class(type.get()) == c.type_class
    && H5Tget_size(type.get()) == c.bytes
    && (c.type_class != H5T_INTEGER || H5Tget_sign(type.get()) == H5T_SGN_2);
  if (!type_ok) {
    problems.push_back(where + ": element type is "
                       + (type ? describe_type(type.get()) : std::string("unreadable"))
                       + ", expected " + c.type_name);
    ok = false;
  }
  h5::dataspace space(H5Dget_space(dset.get()));
  const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank != c.rank) {
    problems.push_back(where + ": rank " + std::to_string(rank) + ", expected "
                       + std::to_string(c.rank)
                       + (c.rank == 3 ? " ([frames][atoms][3])" : " ([frames])"));
    return {};
  }
  ext.rank = rank;
  H5Sget_simple_extent_dims(space.get(), ext.dims.data(), ext.max.data());
  if (c.rank == 3) {
    if (ext.dims[2] != 3) {
      problems.push_back(where + ": last dimension is " + std::to_string(ext.dims[2])
                         + ", expected 3 (x y z)");
      ok = false;
    }
    if (ext.dims[1] == 0) {
      problems.push_back(where + ": 0 atoms per frame");
      ok = false;
    }
  }
  if (how == frame_store::mode::append && ext.max[0] != h5::unlimited) {
    problems.push_back(where + ": not extendible (at most " + std::to_string(ext.max[0])
                       + " frames), so frames cannot be appended");
    ok = false;
  }
  return ok ? std::move(dset) : h5::dataset{};
}

} // namespace

// -- frame_store state ----------------------------------------------------------------------

struct frame_store::impl {
  std::filesystem::path path;
  mode how = mode::read_only;
  std::size_t atoms = 0;
  std::size_t frames = 0;
  std::string description;
  // Declared before the objects in it: members are destroyed in reverse order, so the file
  // is closed last, after every dataset and the group.
  h5::file file;
  h5::group group;
  std::array<h5::dataset, columns.size()> datasets;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() {
    if (file && how == mode::append) {
      h5::silence_library();
      static_cast<void>(H5Fflush(file.get(), H5F_SCOPE_LOCAL));
      static_cast<void>(H5Eclear2(H5E_DEFAULT));
    }
  }

  /// Writes `values` (in memory type of column `i`) into rows [first, first + count).
  void write_rows(std::size_t i, std::size_t first, std::size_t count, const void* values) {
    transfer_rows(i, first, count, "write", [this, i, values](hid_t memory, hid_t file_space) {
      return H5Dwrite(datasets[i].get(), memory_type(i), memory, file_space, H5P_DEFAULT, values);
    });
  }

  /// Reads rows [first, first + count) of column `i` into `values` (its memory type).
  void read_rows(std::size_t i, std::size_t first, std::size_t count, void* values) const {
    transfer_rows(i, first, count, "read", [this, i, values](hid_t memory, hid_t file_space) {
      return H5Dread(datasets[i].get(), memory_type(i), memory, file_space, H5P_DEFAULT, values);
    });
  }

  /// Selects rows [first, first + count) of column `i` and runs `io(memory space, file space)`.
  template <class Io>
  void transfer_rows(std::size_t i, std::size_t first, std::size_t count, const char* verb,
                     Io&& io) const {
    const hsize_t start[3] = {first, 0, 0};
    const hsize_t extent[3] = {count, atoms, 3};
    const auto what = std::string("cannot ") + verb + " " + frame_range(first, count) + " of "
                      + object_name(columns[i]);
    auto file_space = h5::checked<h5::dataspace>(H5Dget_space(datasets[i].get()), path, what);
    h5::check(
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, extent, nullptr), path,
      what);
    auto memory_space
      = h5::checked<h5::dataspace>(H5Screate_simple(columns[i].rank, extent, nullptr), path, what);
    h5::check(io(memory_space.get(), file_space.get()), path, what);
  }

  /// Sets the length of every dataset to `n` frames.
  void set_length(std::size_t n) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const hsize_t extent[3] = {n, atoms, 3};
      h5::check(H5Dset_extent(datasets[i].get(), extent), path,
                "cannot change the length of " + object_name(columns[i]) + " to "
                  + std::to_string(n) + " frames");
    }
  }

  /// Opens /frames and its datasets and checks the whole layout; throws store_error naming
  /// every problem found.
  void load_layout();
};

void frame_store::impl::load_layout() {
  if (H5Lexists(file.get(), group_name, H5P_DEFAULT) <= 0)
    throw store_error(
      path, std::string("an HDF5 file without a /") + group_name + " group: not a frame store");
  {
    const hid_t object = H5Oopen(file.get(), group_name, H5P_DEFAULT);
    if (object < 0)
      h5::fail(path, std::string("cannot open /") + group_name);
    if (H5Iget_type(object) != H5I_GROUP) {
      static_cast<void>(H5Oclose(object));
      throw store_error(path, std::string("/") + group_name + " is not a group: not a frame store");
    }
    group = h5::group(object);
  }

  std::vector<std::string> problems;
  long long format = 0;
  if (read_int_attribute(group.get(), "mummi_format", format, problems)
      && format != supported_format)
    problems.push_back("unsupported mummi_format " + std::to_string(format)
                       + " (this build reads format " + std::to_string(supported_format) + ")");
  long long atoms_attribute = 0;
  const bool have_atoms = read_int_attribute(group.get(), "atoms", atoms_attribute, problems);
  if (have_atoms && atoms_attribute <= 0)
    problems.push_back("/" + std::string(group_name) + " attribute atoms is "
                       + std::to_string(atoms_attribute) + ", expected > 0");
  read_string_attribute(group.get(), "description", description, problems);

  std::array<dataset_extent, columns.size()> extents;
  bool all_columns = true;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    datasets[i] = inspect_column(group.get(), i, how, extents[i], problems);
    all_columns = all_columns && static_cast<bool>(datasets[i]);
  }
  if (datasets[0] && have_atoms && atoms_attribute > 0
      && extents[0].dims[1] != static_cast<hsize_t>(atoms_attribute))
    problems.push_back(object_name(columns[0]) + " holds " + std::to_string(extents[0].dims[1])
                       + " atoms per frame, but attribute atoms says "
                       + std::to_string(atoms_attribute));
  // Lengths are compared among the datasets that have a usable rank.
  std::vector<std::string> lengths;
  bool same_length = true;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (extents[i].rank == 0)
      continue;
    lengths.push_back(std::string(columns[i].name) + " " + std::to_string(extents[i].dims[0]));
    for (std::size_t j = 0; j < i; ++j)
      if (extents[j].rank != 0 && extents[j].dims[0] != extents[i].dims[0])
        same_length = false;
  }
  if (!same_length)
    problems.push_back("datasets under /" + std::string(group_name)
                       + " differ in length (frames): " + join(lengths, ", "));
  if (!problems.empty() || !all_columns)
    throw store_error(path,
                      "not a frame store of format " + std::to_string(supported_format) + ": "
                        + join(problems, "; "));
  atoms = extents[0].dims[1];
  frames = extents[0].dims[0];
}

// -- frame_block ----------------------------------------------------------------------------

void frame_block::append(const frame_block& other) {
  if (other.positions_nm.size() != other.frames() * other.atoms * 3)
    throw std::invalid_argument("frame_block::append: the appended block holds "
                                + std::to_string(other.positions_nm.size())
                                + " coordinates, not frames x atoms x 3 = "
                                + std::to_string(other.frames() * other.atoms * 3));
  if (other.frames() == 0)
    return;
  if (frames() == 0 && positions_nm.empty())
    atoms = other.atoms;
  if (other.atoms != atoms)
    throw std::invalid_argument("frame_block::append: the appended block has "
                                + std::to_string(other.atoms) + " atoms per frame, this one "
                                + std::to_string(atoms));
  positions_nm.insert(positions_nm.end(), other.positions_nm.begin(), other.positions_nm.end());
  meta.insert(meta.end(), other.meta.begin(), other.meta.end());
}

// -- frame_store ----------------------------------------------------------------------------

frame_store::frame_store(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
frame_store::frame_store(frame_store&&) noexcept = default;
frame_store& frame_store::operator=(frame_store&&) noexcept = default;
frame_store::~frame_store() = default;

frame_store frame_store::create(const std::filesystem::path& path,
                                const frame_store_options& options) {
  h5::silence_library();
  std::vector<std::string> problems;
  if (options.atoms == 0)
    problems.push_back("atoms must be > 0");
  if (options.atoms > static_cast<std::size_t>(INT_MAX))
    problems.push_back("atoms " + std::to_string(options.atoms) + " is above "
                       + std::to_string(INT_MAX));
  if (options.chunk_frames == 0)
    problems.push_back("chunk_frames must be > 0");
  if (options.deflate_level < 0 || options.deflate_level > 9)
    problems.push_back("deflate_level " + std::to_string(options.deflate_level)
                       + " is outside 0..9");
  if (options.atoms > 0 && options.chunk_frames > 0
      && options.atoms <= static_cast<std::size_t>(INT_MAX)
      && options.chunk_frames > max_chunk_bytes / (options.atoms * 3 * sizeof(float)))
    problems.push_back("a chunk of " + std::to_string(options.chunk_frames) + " frames x "
                       + std::to_string(options.atoms)
                       + " atoms reaches HDF5's 4 GiB chunk limit; lower chunk_frames");
  if (!problems.empty())
    throw store_error(path, "cannot create the store: " + join(problems, "; "));

  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    throw store_error(path,
                      "already exists; a frame store is never overwritten (remove the "
                      "file or choose another path)");
  const auto parent = path.parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    throw store_error(
      path, "cannot create the store: parent directory " + parent.string() + " does not exist");

  auto state = std::make_unique<impl>();
  state->path = path;
  state->how = mode::append;
  state->atoms = options.atoms;
  state->description = options.description;
  {
    const auto fapl = latest_format_access(path);
    state->file
      = h5::checked<h5::file>(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), path,
                              "cannot create the store file");
  }
  try {
    state->group = h5::checked<h5::group>(
      H5Gcreate2(state->file.get(), group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
      std::string("cannot create group /") + group_name);
    write_int_attribute(path, state->group.get(), "mummi_format",
                        static_cast<int>(supported_format));
    write_int_attribute(path, state->group.get(), "atoms", static_cast<int>(options.atoms));
    write_string_attribute(path, state->group.get(), "description", options.description);
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const auto what = "cannot create " + object_name(columns[i]);
      const int rank = columns[i].rank;
      const hsize_t dims[3] = {0, options.atoms, 3};
      const hsize_t max[3] = {h5::unlimited, options.atoms, 3};
      const hsize_t chunk[3] = {options.chunk_frames, options.atoms, 3};
      auto space = h5::checked<h5::dataspace>(H5Screate_simple(rank, dims, max), path, what);
      auto dcpl = h5::checked<h5::plist>(H5Pcreate(H5P_DATASET_CREATE), path, what);
      h5::check(H5Pset_chunk(dcpl.get(), rank, chunk), path, what);
      if (options.deflate_level > 0) {
        h5::check(H5Pset_shuffle(dcpl.get()), path, what + " (shuffle filter)");
        h5::check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.deflate_level)), path,
                  what + " (deflate filter)");
      }
      state->datasets[i]
        = h5::checked<h5::dataset>(H5Dcreate2(state->group.get(), columns[i].name, file_type(i),
                                              space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                                   path, what);
    }
    h5::check(H5Fflush(state->file.get(), H5F_SCOPE_LOCAL), path, "cannot flush the new store");
  } catch (...) {
    // No half-made store is left behind.
    state.reset();
    std::filesystem::remove(path, ec);
    throw;
  }
  return frame_store(std::move(state));
}

frame_store frame_store::open(const std::filesystem::path& path, mode how) {
  h5::silence_library();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    throw store_error(path, "no such file");
  if (std::filesystem::is_directory(status))
    throw store_error(path, "is a directory, not a frame store file");
  const auto is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0)
    h5::fail(path, "cannot be read");
  if (is_hdf5 == 0) {
    const auto size = std::filesystem::file_size(path, ec);
    throw store_error(path,
                      "not an HDF5 file (no HDF5 signature in its "
                        + (ec ? std::string("unknown") : std::to_string(size)) + " bytes)");
  }

  auto state = std::make_unique<impl>();
  state->path = path;
  state->how = how;
  const auto fapl = latest_format_access(path);
  const unsigned flags = how == mode::append ? H5F_ACC_RDWR : H5F_ACC_RDONLY;
  state->file = h5::file(H5Fopen(path.c_str(), flags, fapl.get()));
  if (!state->file) {
    // Taken before any other HDF5 call (closing fapl included) clears the stack.
    const auto stack = h5::take_error_stack();
    std::string problem = how == mode::append ? "cannot open the HDF5 file for appending"
                                              : "cannot open the HDF5 file";
    if (stack.find("lock") != std::string::npos)
      problem += ": another process has it open for writing (one writer per file; open it "
                 "after the writer has closed it)";
    else if (stack.find("truncated") != std::string::npos)
      problem += ": the file is truncated";
    else if (stack.find("already open for write") != std::string::npos)
      problem += ": it was not closed by its last writer (the writer crashed, or writes from "
                 "another host); frames flushed before are intact: once no writer runs, clear "
                 "the mark with `h5clear -s "
        + path.string() + "` and open it again";
    else if (stack.find("already open for read-only") != std::string::npos)
      problem += ": it is open read-only in this process";
    throw store_error(path, stack.empty() ? problem : problem + " (HDF5: " + stack + ")");
  }
  if (how == mode::append && H5Fget_obj_count(state->file.get(), H5F_OBJ_FILE) > 1)
    throw store_error(path,
                      "already open in this process; a store has one writer and is not "
                      "opened for appending while open elsewhere");
  state->load_layout();
  return frame_store(std::move(state));
}

namespace {

const std::filesystem::path empty_path;
const std::string empty_text;

} // namespace

const std::filesystem::path& frame_store::path() const noexcept {
  return impl_ ? impl_->path : empty_path;
}
std::size_t frame_store::atom_count() const noexcept {
  return impl_ ? impl_->atoms : 0;
}
std::size_t frame_store::frame_count() const noexcept {
  return impl_ ? impl_->frames : 0;
}
const std::string& frame_store::description() const noexcept {
  return impl_ ? impl_->description : empty_text;
}

void frame_store::append(const frame_block& block) {
  if (!impl_)
    throw std::logic_error("frame_store::append on a moved-from store");
  h5::silence_library();
  auto& s = *impl_;
  if (s.how != mode::append)
    throw store_error(s.path, "opened read-only; open it with mode::append to add frames");
  if (block.atoms != s.atoms)
    throw store_error(s.path,
                      "cannot append frames of " + std::to_string(block.atoms)
                        + " atoms to a store of " + std::to_string(s.atoms) + " atoms");
  const auto count = block.frames();
  if (block.positions_nm.size() != count * s.atoms * 3)
    throw store_error(s.path,
                      "cannot append: the block holds " + std::to_string(block.positions_nm.size())
                        + " coordinates, expected " + std::to_string(count) + " frames x "
                        + std::to_string(s.atoms)
                        + " atoms x 3 = " + std::to_string(count * s.atoms * 3));
  const auto bad = std::find_if(block.positions_nm.begin(), block.positions_nm.end(), [](float x) {
    return !std::isfinite(x);
  });
  if (bad != block.positions_nm.end()) {
    const auto index = static_cast<std::size_t>(bad - block.positions_nm.begin());
    const auto frame = index / (s.atoms * 3);
    throw store_error(s.path,
                      "cannot append: frame " + std::to_string(frame)
                        + " of the block (would be frame " + std::to_string(s.frames + frame)
                        + " of the store), atom " + std::to_string(index / 3 % s.atoms)
                        + ", coordinate " + "xyz"[index % 3] + " is " + std::to_string(*bad)
                        + "; nothing was written");
  }
  if (count == 0)
    return;

  std::vector<std::int64_t> step(count);
  std::vector<double> time_ps(count);
  std::vector<std::int32_t> label(count);
  std::vector<std::int64_t> source(count);
  for (std::size_t i = 0; i < count; ++i) {
    step[i] = block.meta[i].step;
    time_ps[i] = block.meta[i].time_ps;
    label[i] = block.meta[i].label;
    source[i] = block.meta[i].source;
  }
  const auto first = s.frames;
  try {
    s.set_length(first + count);
    s.write_rows(0, first, count, block.positions_nm.data());
    s.write_rows(1, first, count, step.data());
    s.write_rows(2, first, count, time_ps.data());
    s.write_rows(3, first, count, label.data());
    s.write_rows(4, first, count, source.data());
  } catch (...) {
    // Best effort: give the datasets back their old, common length.
    try {
      s.set_length(first);
    } catch (const store_error&) {
    }
    throw;
  }
  s.frames = first + count;
}

frame_block frame_store::read(std::size_t first, std::size_t count) const {
  if (!impl_)
    throw std::logic_error("frame_store::read on a moved-from store");
  h5::silence_library();
  const auto& s = *impl_;
  frame_block out;
  out.atoms = s.atoms;
  if (first >= s.frames || count == 0)
    return out;
  count = std::min(count, s.frames - first);
  out.positions_nm.resize(count * s.atoms * 3);
  std::vector<std::int64_t> step(count);
  std::vector<double> time_ps(count);
  std::vector<std::int32_t> label(count);
  std::vector<std::int64_t> source(count);
  s.read_rows(0, first, count, out.positions_nm.data());
  s.read_rows(1, first, count, step.data());
  s.read_rows(2, first, count, time_ps.data());
  s.read_rows(3, first, count, label.data());
  s.read_rows(4, first, count, source.data());
  out.meta.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    out.meta[i].step = step[i];
    out.meta[i].time_ps = time_ps[i];
    out.meta[i].label = label[i];
    out.meta[i].source = source[i];
  }
  return out;
}

frame_block frame_store::read_all() const {
  return read(0, frame_count());
}

void frame_store::flush() {
  if (!impl_)
    throw std::logic_error("frame_store::flush on a moved-from store");
  h5::silence_library();
  if (impl_->how == mode::append)
    h5::check(H5Fflush(impl_->file.get(), H5F_SCOPE_LOCAL), impl_->path, "cannot flush");
}

frame_block read_frames(const std::vector<std::filesystem::path>& paths) {
  frame_block all;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto store = frame_store::open(paths[i]);
    if (i > 0 && store.atom_count() != all.atoms)
      throw store_error(paths[i],
                        "has " + std::to_string(store.atom_count()) + " atoms per frame, but "
                          + paths[0].string() + " has " + std::to_string(all.atoms)
                          + "; frames of different atom sets cannot be read together");
    if (i == 0)
      all.atoms = store.atom_count();
    all.append(store.read_all());
  }
  return all;
}

} // namespace mummi::coupling
