// The importance sampler and its incremental k-nearest index, against brute-force ranks.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../ml/importance_index.hpp"
#include "../../ml/samplers.hpp"

namespace mummi::ml {
namespace {

constexpr std::size_t dims = 8;

std::vector<float> random_rows(std::size_t n, std::uint64_t seed, float shift = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> v(n * dims);
  for (auto& x : v)
    x = normal(rng) + shift;
  return v;
}

float squared_distance(const float* a, const float* b) {
  float s = 0;
  for (std::size_t c = 0; c < dims; ++c)
    s += (a[c] - b[c]) * (a[c] - b[c]);
  return s;
}

// Mean L2 distance from x to its min(k, selected) nearest rows of `selected`.
double brute_rank(const float* x, const std::vector<float>& selected, std::size_t k) {
  std::vector<double> d;
  for (std::size_t j = 0; j < selected.size() / dims; ++j)
    d.push_back(std::sqrt(static_cast<double>(squared_distance(x, selected.data() + j * dims))));
  std::sort(d.begin(), d.end());
  const std::size_t m = std::min(k, d.size());
  double s = 0;
  for (std::size_t i = 0; i < m; ++i)
    s += d[i];
  return s / static_cast<double>(m);
}

TEST(importance_index, neighbour_lists_match_brute_force_after_rounds) {
  knn_distance_index index(dims, 10);
  std::vector<float> pool = random_rows(3000, 1);
  std::vector<float> selected;
  index.add_candidates(pool.data(), 1500);
  std::vector<float> mirror(pool.begin(), pool.begin() + 1500 * dims);
  for (int round = 0; round < 6; ++round) {
    // New selected points (some pending across a candidate addition), new candidates, removals.
    auto fresh = random_rows(37, 100 + static_cast<std::uint64_t>(round));
    index.add_selected(fresh.data(), 37);
    selected.insert(selected.end(), fresh.begin(), fresh.end());
    const float* more = pool.data() + (1500 + static_cast<std::size_t>(round) * 200) * dims;
    index.add_candidates(more, 200);
    mirror.insert(mirror.end(), more, more + 200 * dims);
    std::vector<std::size_t> gone = {0, 5, 17, index.candidate_count() - 1};
    index.remove_candidates(gone);
    knn_distance_index::swap_remove(mirror, gone, dims);
    index.flush();
    ASSERT_EQ(index.candidate_count(), mirror.size() / dims);
    for (std::size_t i = 0; i < index.candidate_count(); i += 7) {
      ASSERT_EQ(0, std::memcmp(index.candidate(i), mirror.data() + i * dims, dims * sizeof(float)));
      std::vector<float> d;
      for (std::size_t j = 0; j < selected.size() / dims; ++j)
        d.push_back(squared_distance(index.candidate(i), selected.data() + j * dims));
      std::sort(d.begin(), d.end());
      for (std::size_t j = 0; j < 10; ++j) {
        const float want = j < d.size() ? d[j] : std::numeric_limits<float>::infinity();
        if (std::isinf(want))
          EXPECT_TRUE(std::isinf(index.neighbours(i)[j]));
        else
          EXPECT_NEAR(index.neighbours(i)[j], want, 1e-4F * (1 + want)) << "candidate " << i;
      }
    }
    std::vector<float> ranks;
    index.ranks(ranks);
    for (std::size_t i = 0; i < ranks.size(); i += 13)
      EXPECT_NEAR(ranks[i], brute_rank(index.candidate(i), selected, 10), 1e-4);
  }
}

TEST(importance_index, top_ranked_is_sorted_and_fewer_than_k_selected_averages_what_is_there) {
  knn_distance_index index(dims, 10);
  auto c = random_rows(500, 3);
  index.add_candidates(c.data(), 500);
  std::vector<float> ranks;
  index.ranks(ranks);
  EXPECT_TRUE(std::isinf(ranks[0]));
  auto s = random_rows(3, 4);
  index.add_selected(s.data(), 3);
  index.ranks(ranks);
  EXPECT_NEAR(ranks[10], brute_rank(index.candidate(10), s, 10), 1e-4);
  auto top = index.top_ranked(20);
  ASSERT_EQ(top.size(), 20U);
  for (std::size_t i = 1; i < top.size(); ++i)
    EXPECT_GE(ranks[top[i - 1]], ranks[top[i]]);
  const float cut = ranks[top.back()];
  EXPECT_EQ(std::count_if(ranks.begin(), ranks.end(), [cut](float r) { return r > cut; }), 19);
  EXPECT_THROW(index.remove_candidates({1, 1}), std::invalid_argument);
  EXPECT_THROW(index.remove_candidates({500}), std::out_of_range);
}

state_ensembles ensembles(std::size_t na, std::size_t nb) {
  state_ensembles s;
  s.a.dims = dims;
  s.a.values = random_rows(na, 7, -2);
  s.b.dims = dims;
  s.b.values = random_rows(nb, 8, 2);
  return s;
}

// A model of the sampler's pool (ensembles only, no random draws) that ranks by brute force.
struct brute_model {
  std::vector<std::vector<float>> pool;
  std::vector<float> selected;

  explicit brute_model(const state_ensembles& s) {
    for (const auto* e : {&s.a, &s.b})
      for (std::size_t i = 0; i < e->size(); ++i)
        pool.emplace_back(e->row(i), e->row(i) + dims);
  }
  std::vector<std::vector<float>> top(std::size_t n) const {
    std::vector<std::pair<double, std::size_t>> r;
    for (std::size_t i = 0; i < pool.size(); ++i)
      r.emplace_back(brute_rank(pool[i].data(), selected, 10), i);
    std::stable_sort(r.begin(), r.end(), [](auto& x, auto& y) { return x.first > y.first; });
    std::vector<std::vector<float>> out;
    for (std::size_t i = 0; i < n && i < r.size(); ++i)
      out.push_back(pool[r[i].second]);
    return out;
  }
  void take(const std::vector<float>& z) {
    auto it = std::find(pool.begin(), pool.end(), z);
    ASSERT_NE(it, pool.end());
    pool.erase(it);
    selected.insert(selected.end(), z.begin(), z.end());
  }
  void frame(const std::vector<float>& z) {
    pool.push_back(z);
    selected.insert(selected.end(), z.begin(), z.end());
  }
};

sampler_params ensembles_only() {
  return {{"initial_candidates", "0"}};
}

TEST(importance_sampler, selections_are_the_brute_force_top_ranked_after_random_start) {
  const auto states = ensembles(150, 150);
  auto s = make_importance_sampler(states, ensembles_only(), 42);
  EXPECT_EQ(s->name(), "importance");
  brute_model model(states);
  // Nothing selected: the first 10 are random (not the pool's first rows).
  auto first = s->select(10);
  ASSERT_EQ(first.size(), 10U);
  std::size_t in_order = 0;
  for (std::size_t i = 0; i < 10; ++i)
    in_order += first[i].z == model.pool[i] ? 1 : 0;
  EXPECT_LT(in_order, 10U);
  for (const auto& x : first)
    model.take(x.z);
  for (int round = 0; round < 5; ++round) {
    auto want = model.top(7);
    auto got = s->select(7);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].z, want[i]) << "round " << round << " pick " << i;
      model.take(got[i].z);
    }
    sampler_feedback f;
    f.what = sampler_feedback::kind::frame;
    f.sample_id = got[0].id;
    auto z = random_rows(1, 900 + static_cast<std::uint64_t>(round));
    f.z.assign(z.begin(), z.end());
    s->add_feedback(f);
    model.frame(f.z);
    f.what = sampler_feedback::kind::validation; // ignored
    s->add_feedback(f);
  }
}

TEST(importance_sampler, random_until_enough_points_are_selected) {
  const auto states = ensembles(150, 150);
  auto a = make_importance_sampler(states, ensembles_only(), 1)->select(5);
  auto b = make_importance_sampler(states, ensembles_only(), 2)->select(5);
  EXPECT_NE(a[0].z, b[0].z);
  // With random_selections 0 the very first pick is ranked: all ranks equal, pool order.
  auto p = ensembles_only();
  p["random_selections"] = "0";
  auto c = make_importance_sampler(states, p, 1)->select(2);
  EXPECT_EQ(c[0].z, std::vector<float>(states.a.row(0), states.a.row(0) + dims));
  EXPECT_EQ(c[0].pair_a, 0);
  EXPECT_EQ(c[0].lambda, 0.0);
}

TEST(importance_sampler, nothing_is_selected_before_min_candidates) {
  const auto states = ensembles(30, 30);
  auto s = make_importance_sampler(states, ensembles_only(), 5);
  EXPECT_TRUE(s->select(10).empty());
  sampler_feedback f;
  f.what = sampler_feedback::kind::frame;
  for (std::uint64_t i = 0; i < 40; ++i) {
    auto z = random_rows(1, 50 + i);
    f.z.assign(z.begin(), z.end());
    s->add_feedback(f);
  }
  auto got = s->select(10);
  ASSERT_EQ(got.size(), 10U);
  EXPECT_TRUE(s->select(1).empty()); // 90 left
}

TEST(importance_sampler, pool_is_capped_and_ids_never_repeat) {
  const auto states = ensembles(20, 20);
  sampler_params p = {{"max_candidates", "150"}, {"initial_candidates", "400"},
                      {"min_candidates", "0"}};
  auto s = make_importance_sampler(states, p, 9);
  std::set<std::uint64_t> ids;
  std::set<std::vector<float>> zs;
  auto got = s->select(30);
  sampler_feedback f;
  f.what = sampler_feedback::kind::frame;
  for (std::uint64_t i = 0; i < 100; ++i) {
    auto z = random_rows(1, 3000 + i);
    f.z.assign(z.begin(), z.end());
    s->add_feedback(f); // the pool stays at 120 + frames up to the cap
  }
  auto rest = s->select(1000);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got.size(), 30U + 150U) << "120 left after the first 30, then frames fill to the cap";
  for (const auto& x : got) {
    EXPECT_TRUE(ids.insert(x.id).second);
    EXPECT_TRUE(zs.insert(x.z).second);
    EXPECT_EQ(x.z.size(), dims);
  }
  EXPECT_EQ(*ids.begin(), 1U);
  EXPECT_TRUE(s->select(1).empty());
}

TEST(importance_sampler, random_draws_lie_between_their_pair) {
  const auto states = ensembles(10, 10);
  sampler_params p = {{"include_ensembles", "false"}, {"initial_candidates", "200"}};
  auto got = make_importance_sampler(states, p, 3)->select(20);
  ASSERT_EQ(got.size(), 20U);
  for (const auto& x : got) {
    ASSERT_GE(x.pair_a, 0);
    ASSERT_GE(x.pair_b, 0);
    ASSERT_GE(x.lambda, 0.0);
    ASSERT_LE(x.lambda, 1.0);
    const float* a = states.a.row(static_cast<std::size_t>(x.pair_a));
    const float* b = states.b.row(static_cast<std::size_t>(x.pair_b));
    for (std::size_t c = 0; c < dims; ++c)
      EXPECT_NEAR(x.z[c], (1 - x.lambda) * a[c] + x.lambda * b[c], 1e-5);
  }
}

std::vector<latent_sample> script(sampler& s, int rounds) {
  std::vector<latent_sample> out;
  sampler_feedback f;
  f.what = sampler_feedback::kind::frame;
  for (int r = 0; r < rounds; ++r) {
    auto got = s.select(r % 2 == 0 ? 3 : 11);
    out.insert(out.end(), got.begin(), got.end());
    f.z = got.at(0).z;
    f.z[0] += 0.25F;
    s.add_feedback(f);
  }
  return out;
}

void expect_same(const std::vector<latent_sample>& x, const std::vector<latent_sample>& y) {
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].id, y[i].id);
    EXPECT_EQ(x[i].z, y[i].z);
    EXPECT_EQ(x[i].lambda, y[i].lambda);
    EXPECT_EQ(x[i].pair_a, y[i].pair_a);
    EXPECT_EQ(x[i].pair_b, y[i].pair_b);
  }
}

TEST(importance_sampler, same_seed_same_selections) {
  const auto states = ensembles(50, 50);
  auto a = make_importance_sampler(states, {}, 11);
  auto b = make_importance_sampler(states, {}, 11);
  auto c = make_importance_sampler(states, {}, 12);
  auto xa = script(*a, 6);
  expect_same(xa, script(*b, 6));
  EXPECT_NE(xa[0].z, script(*c, 6)[0].z);
}

TEST(importance_sampler, restore_continues_exactly) {
  const auto states = ensembles(50, 50);
  auto a = make_importance_sampler(states, {}, 21);
  script(*a, 1); // random phase, pending selections
  const auto bytes = a->checkpoint();
  auto b = make_importance_sampler(states, {}, 99);
  b->restore(bytes);
  expect_same(script(*a, 6), script(*b, 6));
  EXPECT_EQ(a->checkpoint(), b->checkpoint());

  EXPECT_THROW(b->restore("not a checkpoint"), sampler_error);
  EXPECT_THROW(b->restore(std::string_view(bytes).substr(0, bytes.size() - 3)), sampler_error);
  auto other_k = make_importance_sampler(states, {{"k", "5"}}, 21);
  try {
    other_k->restore(bytes);
    FAIL() << "restored a checkpoint made with another k";
  } catch (const sampler_error& e) {
    EXPECT_NE(std::string(e.what()).find("k"), std::string::npos) << e.what();
  }
}

TEST(importance_sampler, bad_params_and_inputs_are_named) {
  const auto states = ensembles(10, 10);
  auto message = [&](const sampler_params& p, const state_ensembles& s) -> std::string {
    try {
      make_importance_sampler(s, p, 1);
    } catch (const sampler_error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({{"kk", "3"}}, states).find("unknown parameter 'kk'"), std::string::npos);
  auto m = message({{"k", "0"}, {"max_candidates", "x"}}, states);
  EXPECT_NE(m.find("'k'"), std::string::npos) << m;
  EXPECT_NE(m.find("'max_candidates'"), std::string::npos) << m;
  EXPECT_NE(message({{"min_candidates", "10"}, {"max_candidates", "5"}}, states)
              .find("min_candidates"),
            std::string::npos);
  EXPECT_NE(message({{"include_ensembles", "yes"}}, states).find("include_ensembles"),
            std::string::npos);
  auto bad = states;
  bad.b.dims = 4;
  bad.b.values.resize(8);
  EXPECT_NE(message({}, bad).find("differ in dims"), std::string::npos);
  bad = states;
  bad.a.values.clear();
  EXPECT_NE(message({}, bad).find("ensemble A is empty"), std::string::npos);
  bad = states;
  bad.b.values[3] = std::nanf("");
  EXPECT_NE(message({}, bad).find("ensemble B row 0 column 3"), std::string::npos);

  auto s = make_importance_sampler(states, {}, 1);
  sampler_feedback f;
  f.what = sampler_feedback::kind::frame;
  f.sample_id = 7;
  f.z.assign(3, 0.0F);
  try {
    s->add_feedback(f);
    FAIL();
  } catch (const sampler_error& e) {
    EXPECT_NE(std::string(e.what()).find("sample 7 has 3 coordinates"), std::string::npos);
  }
}

} // namespace
} // namespace mummi::ml
