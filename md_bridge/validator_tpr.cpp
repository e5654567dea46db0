#include "validator_tpr.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

namespace mummi::md::detail {

namespace {

std::string encode(std::span<const double> xyz, bool double_precision) {
  std::string out;
  out.reserve(xyz.size() * (double_precision ? 8 : 4));
  for (double v : xyz) {
    if (double_precision) {
      auto bits = __builtin_bswap64(std::bit_cast<std::uint64_t>(v));
      out.append(reinterpret_cast<const char*>(&bits), sizeof(bits));
    } else {
      auto bits = __builtin_bswap32(std::bit_cast<std::uint32_t>(static_cast<float>(v)));
      out.append(reinterpret_cast<const char*>(&bits), sizeof(bits));
    }
  }
  return out;
}

/// Bytes that vary between identical grompp runs: where `reference` and `same_input` differ,
/// widened by a word on each side (a varying 8-byte field may share some bytes by chance).
std::vector<bool> noise_mask(std::string_view reference, std::string_view same_input) {
  constexpr std::size_t widen = 8;
  std::vector<bool> mask(reference.size(), false);
  for (std::size_t i = 0; i < reference.size(); ++i)
    if (reference[i] != same_input[i])
      for (auto j = i > widen ? i - widen : 0; j < std::min(reference.size(), i + widen + 1); ++j)
        mask[j] = true;
  return mask;
}

} // namespace

std::optional<std::vector<double>> gro_coordinates(std::string_view text) {
  auto next_line = [&text]() -> std::optional<std::string_view> {
    if (text.empty())
      return std::nullopt;
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    return line;
  };
  if (!next_line())
    return std::nullopt;
  auto count_line = next_line();
  if (!count_line)
    return std::nullopt;
  std::string count_text{*count_line};
  char* end = nullptr;
  long n = std::strtol(count_text.c_str(), &end, 10);
  if (end == count_text.c_str() || n <= 0)
    return std::nullopt;
  std::vector<double> xyz;
  xyz.reserve(static_cast<std::size_t>(n) * 3);
  for (long i = 0; i < n; ++i) {
    auto line = next_line();
    if (!line || line->size() < 44 || (*line)[24] != '.' || (*line)[32] != '.'
        || (*line)[40] != '.')
      return std::nullopt;
    for (std::size_t k = 0; k < 3; ++k) {
      std::string field{line->substr(20 + 8 * k, 8)};
      char* e = nullptr;
      double v = std::strtod(field.c_str(), &e);
      if (e != field.c_str() + field.size())
        return std::nullopt;
      xyz.push_back(v);
    }
  }
  return xyz;
}

std::optional<tpr_template> tpr_template::make(std::string reference, std::string_view same_input,
                                               std::span<const double> xyz, std::string_view check,
                                               std::span<const double> check_xyz) {
  if (xyz.empty() || xyz.size() != check_xyz.size() || same_input.size() != reference.size()
      || check.size() != reference.size())
    return std::nullopt;
  for (bool dp : {false, true}) {
    auto block = encode(xyz, dp);
    auto at = reference.find(block);
    if (at == std::string::npos || reference.find(block, at + 1) != std::string::npos)
      continue;
    tpr_template t;
    t.offset_ = at;
    t.values_ = xyz.size();
    t.double_precision_ = dp;
    const auto mask = noise_mask(reference, same_input);
    // The coordinate block must not hold bytes that vary between identical grompp runs.
    for (std::size_t i = at; i < at + block.size(); ++i)
      if (mask[i])
        return std::nullopt;
    t.bytes_ = std::move(reference);
    auto patched = t.with_coordinates(check_xyz);
    for (std::size_t i = 0; i < patched.size(); ++i)
      if (patched[i] != check[i] && !mask[i])
        return std::nullopt;
    return t;
  }
  return std::nullopt;
}

std::string tpr_template::with_coordinates(std::span<const double> xyz) const {
  if (xyz.size() != values_)
    throw std::invalid_argument("tpr template for " + std::to_string(values_ / 3) + " atoms given "
                                + std::to_string(xyz.size() / 3));
  auto out = bytes_;
  auto block = encode(xyz, double_precision_);
  out.replace(offset_, block.size(), block);
  return out;
}

} // namespace mummi::md::detail
