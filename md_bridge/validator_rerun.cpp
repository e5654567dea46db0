#include "validator_rerun.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "mummi/md_bridge/errors.hpp"

namespace mummi::md::detail {

namespace {

/// Big-endian (XDR) reading of a whole file held in memory.
class xdr_reader {
public:
  xdr_reader(std::string bytes, const std::filesystem::path& name)
    : bytes_(std::move(bytes)), name_(name) {}
  bool at_end() const noexcept {
    return pos_ >= bytes_.size();
  }
  std::int32_t int32() {
    return static_cast<std::int32_t>(__builtin_bswap32(raw<std::uint32_t>()));
  }
  double real(std::size_t size) {
    if (size == 8)
      return std::bit_cast<double>(__builtin_bswap64(raw<std::uint64_t>()));
    return std::bit_cast<float>(__builtin_bswap32(raw<std::uint32_t>()));
  }
  void skip(std::size_t n) {
    need(n);
    pos_ += n;
  }

private:
  template<typename T>
  T raw() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void need(std::size_t n) const {
    if (pos_ + n > bytes_.size())
      throw io_error(name_, 0, "truncated .trr file");
  }
  std::string bytes_;
  std::filesystem::path name_;
  std::size_t pos_ = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

} // namespace

std::vector<frame_forces> read_trr_forces(const std::filesystem::path& trr) {
  std::ifstream in(trr, std::ios::binary);
  if (!in)
    throw io_error(trr, 0, "cannot read");
  xdr_reader r({std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}, trr);
  std::vector<frame_forces> frames;
  while (!r.at_end()) {
    if (r.int32() != 1993)
      throw io_error(trr, 0, "not a .trr file (frame " + std::to_string(frames.size() + 1) + ")");
    r.int32(); // length of the version string with its terminator
    auto version_length = static_cast<std::size_t>(r.int32());
    r.skip((version_length + 3) / 4 * 4);
    std::int32_t sizes[13];
    for (auto& s : sizes)
      s = r.int32();
    const auto [ir, e, box, vir, pres, top, sym, x, v, f, natoms, step, nre] = sizes;
    (void)step;
    (void)nre;
    if (natoms <= 0 || f <= 0)
      throw io_error(trr, 0, "frame " + std::to_string(frames.size() + 1) + " holds no forces");
    const auto real_size = static_cast<std::size_t>(f) / (static_cast<std::size_t>(natoms) * 3);
    if (real_size != 4 && real_size != 8)
      throw io_error(trr, 0, "unexpected force block size " + std::to_string(f));
    r.skip(2 * real_size); // time, lambda
    for (auto block : {ir, e, box, vir, pres, top, sym, x, v})
      r.skip(static_cast<std::size_t>(block));
    frame_forces out;
    out.atoms = static_cast<std::size_t>(natoms);
    double fmax2 = 0, total2 = 0;
    for (std::int32_t a = 0; a < natoms; ++a) {
      double c[3];
      for (auto& component : c) {
        component = r.real(real_size);
        out.finite = out.finite && std::isfinite(component);
      }
      // In the file's precision, like GROMACS's sum of squares; NaN never compares greater.
      double sum2 = real_size == 4
        ? static_cast<double>(static_cast<float>(c[0]) * static_cast<float>(c[0])
                              + static_cast<float>(c[1]) * static_cast<float>(c[1])
                              + static_cast<float>(c[2]) * static_cast<float>(c[2]))
        : c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
      total2 += sum2;
      if (sum2 > fmax2) {
        fmax2 = sum2;
        out.fmax_atom = a + 1;
      }
    }
    out.fmax_kj_mol_nm = real_size == 4 ? static_cast<double>(std::sqrt(static_cast<float>(fmax2)))
                                        : std::sqrt(fmax2);
    out.rms_kj_mol_nm = std::sqrt(total2 / static_cast<double>(natoms));
    frames.push_back(out);
  }
  return frames;
}

std::vector<double> rerun_potentials(std::string_view text, const std::filesystem::path& log_name) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  constexpr std::size_t column = 15; // GROMACS prints energy names and values in %15 fields
  std::vector<double> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("A V E R A G E S") != std::string_view::npos)
      break;
    if (trim(lines[i]) != "Energies (kJ/mol)")
      continue;
    bool found = false;
    for (auto j = i + 1; j + 1 < lines.size() && !trim(lines[j]).empty() && !found; j += 2) {
      auto names = lines[j], values = lines[j + 1];
      for (std::size_t c = 0; c * column < names.size(); ++c) {
        if (trim(names.substr(c * column, column)) != "Potential")
          continue;
        if (c * column >= values.size())
          break;
        std::string v{trim(values.substr(c * column, column))};
        char* end = nullptr;
        double value = std::strtod(v.c_str(), &end);
        if (end == v.c_str())
          throw io_error(log_name, j + 2, "cannot read the potential energy '" + v + "'");
        out.push_back(value);
        found = true;
        break;
      }
    }
    if (!found)
      throw io_error(log_name, i + 1, "energies without a \"Potential\" entry");
  }
  return out;
}

} // namespace mummi::md::detail
