#include "assignment.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mummi::ml {

std::vector<std::size_t> solve_assignment(std::span<const double> cost, std::size_t n) {
  if (cost.size() != n * n)
    throw std::invalid_argument("solve_assignment: the cost matrix holds "
                                + std::to_string(cost.size()) + " values, not " + std::to_string(n)
                                + " x " + std::to_string(n));
  for (std::size_t k = 0; k < cost.size(); ++k)
    if (!std::isfinite(cost[k]))
      throw std::invalid_argument("solve_assignment: cost[" + std::to_string(k / n) + "]["
                                  + std::to_string(k % n) + "] is not finite");
  if (n == 0)
    return {};
  // Rows and columns are numbered from 1; column 0 is a virtual column holding the row being
  // added. u/v are the dual potentials, way[j] the previous column on the shortest path to j.
  constexpr double inf = std::numeric_limits<double>::infinity();
  constexpr std::size_t none = 0;
  std::vector<double> u(n + 1, 0.0);
  std::vector<double> v(n + 1, 0.0);
  std::vector<std::size_t> row_of(n + 1, none); // row assigned to column j (1-based), 0: none
  std::vector<std::size_t> way(n + 1, 0);
  std::vector<double> min_slack(n + 1);
  std::vector<char> used(n + 1);
  for (std::size_t i = 1; i <= n; ++i) {
    row_of[0] = i;
    std::size_t j0 = 0;
    std::fill(min_slack.begin(), min_slack.end(), inf);
    std::fill(used.begin(), used.end(), char{0});
    do {
      used[j0] = 1;
      const std::size_t i0 = row_of[j0];
      const double* row = cost.data() + (i0 - 1) * n;
      double delta = inf;
      std::size_t j1 = 0;
      for (std::size_t j = 1; j <= n; ++j) {
        if (used[j])
          continue;
        const double slack = row[j - 1] - u[i0] - v[j];
        if (slack < min_slack[j]) {
          min_slack[j] = slack;
          way[j] = j0;
        }
        if (min_slack[j] < delta) {
          delta = min_slack[j];
          j1 = j;
        }
      }
      for (std::size_t j = 0; j <= n; ++j) {
        if (used[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          min_slack[j] -= delta;
        }
      }
      j0 = j1;
    } while (row_of[j0] != none);
    do { // augment along the path
      const std::size_t j1 = way[j0];
      row_of[j0] = row_of[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<std::size_t> col_of_row(n);
  for (std::size_t j = 1; j <= n; ++j)
    col_of_row[row_of[j] - 1] = j - 1;
  return col_of_row;
}

} // namespace mummi::ml
