#pragma once

// Exact linear assignment for square cost matrices (private to mummi::ml and its tests).

#include <cstddef>
#include <span>
#include <vector>

namespace mummi::ml {

/// The permutation `p` minimising sum_i cost[i * n + p[i]] over all permutations of 0..n-1
/// (row i is assigned column p[i]). `cost` is an n x n matrix, row after row. Shortest
/// augmenting paths with dual potentials (Hungarian method in the Jonker-Volgenant form),
/// O(n^3) time and O(n) extra memory. Throws std::invalid_argument when `cost` does not hold
/// n * n values or holds a value that is not finite (naming its row and column).
std::vector<std::size_t> solve_assignment(std::span<const double> cost, std::size_t n);

} // namespace mummi::ml
