#pragma once

/// Private helpers for periodic boxes, shared by the membrane builder and createsims' checks.
/// Not installed; only md_bridge sources include it.

#include <cmath>
#include <cstddef>

namespace mummi::md::detail {

/// `i` wrapped into [0, n).
inline std::size_t wrap_index(long long i, std::size_t n) {
  const auto m = static_cast<long long>(n);
  return static_cast<std::size_t>(((i % m) + m) % m);
}

/// The cell holding coordinate `v` when a periodic length `l` is cut into `n` cells.
inline std::size_t periodic_cell(double v, double l, std::size_t n) {
  return wrap_index(static_cast<long long>(std::floor(v / l * static_cast<double>(n))), n);
}

/// `d` shifted by whole periods `l` into [-l/2, l/2] (the minimum-image distance).
inline double periodic_delta(double d, double l) {
  return d - l * std::round(d / l);
}

} // namespace mummi::md::detail
