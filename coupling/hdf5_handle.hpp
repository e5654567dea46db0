#pragma once

// Move-only owners of HDF5 ids (file, group, dataset, dataspace, property list, datatype,
// attribute) and the translation of HDF5's error stack into store_error. Private to the
// coupling library; the only place besides frame_store.cpp that includes hdf5.h.
//
// HDF5 is built without thread safety here: every call, including the destructors of these
// handles, must come from the one thread that owns the store.

#include <hdf5.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>

#include "mummi/coupling/frame_store.hpp"

namespace mummi::coupling::h5 {

/// Owns one HDF5 id and releases it with `Close` (errors while closing are ignored: a
/// destructor cannot report them). An invalid id (negative) owns nothing.
template<herr_t (*Close)(hid_t)>
class handle {
public:
  handle() noexcept = default;
  explicit handle(hid_t id) noexcept : id_(id) {}
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;
  handle(handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~handle() {
    reset();
  }

  [[nodiscard]] hid_t get() const noexcept {
    return id_;
  }
  explicit operator bool() const noexcept {
    return id_ >= 0;
  }
  void reset() noexcept {
    if (id_ >= 0)
      static_cast<void>(Close(id_));
    id_ = H5I_INVALID_HID;
  }

private:
  hid_t id_ = H5I_INVALID_HID;
};

/// H5T_VARIABLE and H5S_UNLIMITED without the C casts of their macros.
inline constexpr std::size_t variable_size = static_cast<std::size_t>(-1);
inline constexpr hsize_t unlimited = static_cast<hsize_t>(-1);
static_assert(unlimited == H5S_UNLIMITED);

using file = handle<H5Fclose>;
using group = handle<H5Gclose>;
using dataset = handle<H5Dclose>;
using dataspace = handle<H5Sclose>;
using plist = handle<H5Pclose>;
using datatype = handle<H5Tclose>;
using attribute = handle<H5Aclose>;

/// Turns off HDF5's printing of its error stack (on stderr) for the default stack; the store
/// reads the stack itself and puts it into its exceptions. Cheap; called on every entry into
/// the store so that no other code in the process can turn the printing back on for it.
inline void silence_library() noexcept {
  static_cast<void>(H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr));
}

/// The messages on HDF5's current error stack, outermost first, joined by "; " (repeats
/// dropped), and clears the stack. Empty when the stack is empty.
inline std::string take_error_stack() {
  std::string text;
  const auto walk = [](unsigned /*depth*/, const H5E_error2_t* err, void* data) -> herr_t {
    auto& out = *static_cast<std::string*>(data);
    std::string line = err->desc != nullptr ? err->desc : "";
    if (line.empty()) {
      char minor[256] = {};
      if (H5Eget_msg(err->min_num, nullptr, minor, sizeof minor) > 0)
        line = minor;
    }
    if (!line.empty() && out.find(line) == std::string::npos)
      out += (out.empty() ? "" : "; ") + line;
    return 0;
  };
  static_cast<void>(H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &text));
  static_cast<void>(H5Eclear2(H5E_DEFAULT));
  return text;
}

/// Throws store_error(path, "problem (HDF5: stack)") — the stack part only when HDF5 left
/// something on its error stack.
[[noreturn]] inline void fail(const std::filesystem::path& path, const std::string& problem) {
  const auto stack = take_error_stack();
  throw store_error(path, stack.empty() ? problem : problem + " (HDF5: " + stack + ")");
}

/// `id` wrapped in `Handle`, or store_error(path, problem) with HDF5's error stack when the
/// call that made it failed (negative id).
template<class Handle>
[[nodiscard]] Handle checked(hid_t id, const std::filesystem::path& path,
                             const std::string& problem) {
  if (id < 0)
    fail(path, problem);
  return Handle(id);
}

/// Throws store_error(path, problem) with HDF5's error stack when `status` reports a failure.
inline void check(herr_t status, const std::filesystem::path& path, const std::string& problem) {
  if (status < 0)
    fail(path, problem);
}

} // namespace mummi::coupling::h5
