// validator_bench: the vacuum-EM validator against the naive way of running its protocol
// (grompp + mdrun for each stage of each structure, one structure at a time, stage 2 in
// full), on the same perturbed structures in the same run. Prints structures/s for each, the
// ratio, and whether every verdict agrees.
//
//   validator_bench [--structures 20] [--workers 0] [--seed 1] [--gmx gmx]
//                   [--topology chain.top --structure chain.gro] [--no-naive-parallel]

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/validator.hpp"

namespace md = mummi::md;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

/// How a copy of the reference structure is perturbed.
enum class perturbation {
  noise_005,              ///< Gaussian noise, sigma 0.05 nm on every coordinate
  noise_010,              ///< sigma 0.1 nm
  bead_on_near,           ///< one bead put on its nearest non-bonded bead, plus 0.03 nm noise
  compressed_60,          ///< scaled to 60 % about the centre, plus 0.03 nm noise
  bead_on_far,            ///< one bead put on a bead far along the chain (its bonds stretched)
  compressed_10,          ///< scaled to 10 %: everything overlaps
  bonded_pair_coincident, ///< two bonded beads at one place
};

const char* name(perturbation p) {
  switch (p) {
    case perturbation::noise_005: return "noise 0.05 nm";
    case perturbation::noise_010: return "noise 0.10 nm";
    case perturbation::bead_on_near: return "bead on neighbour";
    case perturbation::compressed_60: return "scaled to 60%";
    case perturbation::bead_on_far: return "bead on far bead";
    case perturbation::compressed_10: return "scaled to 10%";
    case perturbation::bonded_pair_coincident: return "bonded pair at one place";
  }
  return "?";
}

/// The mix: mostly mild perturbations (what a decoder produces), some overlaps.
perturbation kind_of(std::size_t i) {
  static const perturbation cycle[] = {
    perturbation::noise_005,     perturbation::noise_010,     perturbation::bead_on_near,
    perturbation::noise_005,     perturbation::compressed_60, perturbation::noise_010,
    perturbation::bead_on_far,   perturbation::noise_005,     perturbation::bead_on_near,
    perturbation::compressed_10, perturbation::noise_010,     perturbation::bonded_pair_coincident,
  };
  return cycle[i % std::size(cycle)];
}

md::structure perturbed(const md::structure& ref, perturbation kind, std::mt19937_64& rng) {
  md::structure s = ref;
  auto& a = s.atoms;
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  auto add_noise = [&](float sigma) {
    for (auto& at : a)
      for (auto& x : at.position_nm)
        x += sigma * gauss(rng);
  };
  auto pick = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  auto scale = [&](float f) {
    md::vec3 c{};
    for (const auto& at : a)
      for (int k = 0; k < 3; ++k)
        c[k] += at.position_nm[k] / static_cast<float>(a.size());
    for (auto& at : a)
      for (int k = 0; k < 3; ++k)
        at.position_nm[k] = c[k] + f * (at.position_nm[k] - c[k]);
  };
  switch (kind) {
    case perturbation::noise_005: add_noise(0.05f); break;
    case perturbation::noise_010: add_noise(0.10f); break;
    case perturbation::bead_on_near: {
      auto i = pick(3, a.size() - 4);
      std::size_t best = 0;
      float best_d = 1e30f;
      for (std::size_t j = 0; j < a.size(); ++j) {
        if (j + 2 >= i && j <= i + 2)
          continue;
        float d = 0;
        for (int k = 0; k < 3; ++k)
          d += std::pow(a[i].position_nm[k] - a[j].position_nm[k], 2.0f);
        if (d < best_d) {
          best_d = d;
          best = j;
        }
      }
      a[i].position_nm = a[best].position_nm;
      add_noise(0.03f);
      break;
    }
    case perturbation::compressed_60:
      scale(0.6f);
      add_noise(0.03f);
      break;
    case perturbation::bead_on_far: {
      auto i = pick(3, a.size() / 2);
      a[i].position_nm = a[i + a.size() / 3].position_nm;
      break;
    }
    case perturbation::compressed_10: scale(0.1f); break;
    case perturbation::bonded_pair_coincident: {
      auto i = pick(1, a.size() - 2);
      a[i].position_nm = a[i - 1].position_nm;
      break;
    }
  }
  return s;
}

struct timed {
  std::vector<md::validation_verdict> verdicts;
  double seconds = 0;
};

template<typename F>
timed run_timed(F&& f) {
  auto start = clock_type::now();
  timed t;
  t.verdicts = f();
  t.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  return t;
}

std::size_t accepted(const std::vector<md::validation_verdict>& v) {
  std::size_t n = 0;
  for (const auto& x : v)
    n += x.accepted ? 1 : 0;
  return n;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"vacuum-EM validator vs the naive grompp+mdrun-per-structure protocol"};
  std::size_t count = 20;
  unsigned workers = 0;
  std::uint64_t seed = 1;
  std::string gmx = "gmx";
  std::string topology = std::string{RUNNER_DATA} + "/chain.top";
  std::string structure_file = std::string{RUNNER_DATA} + "/chain.gro";
  bool naive_parallel = true;
  app.add_option("--structures", count, "how many perturbed structures");
  app.add_option("--workers", workers, "validator workers (0: one per hardware thread)");
  app.add_option("--seed", seed, "perturbation seed");
  app.add_option("--gmx", gmx, "GROMACS program");
  app.add_option("--topology", topology, "topology (.top) of the structure");
  app.add_option("--structure", structure_file, "reference structure (.gro) to perturb");
  app.add_flag("!--no-naive-parallel", naive_parallel,
               "skip the naive protocol run with as many at once as the validator runs");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto ref = md::read_gro(structure_file);
    std::mt19937_64 rng(seed);
    std::vector<md::structure> batch;
    for (std::size_t i = 0; i < count; ++i)
      batch.push_back(perturbed(ref, kind_of(i), rng));

    md::validator_config config;
    config.topology = topology;
    config.workers = workers;
    config.gmx.gmx = gmx;
    md::validator v(config);
    const unsigned used = workers > 0 ? workers : std::max(1u, std::thread::hardware_concurrency());

    std::printf("validator_bench: %zu structures of %zu beads (%s), %u workers, %u hardware "
                "threads, gmx '%s'\n",
                count, ref.atoms.size(), fs::path(structure_file).filename().c_str(), used,
                std::thread::hardware_concurrency(), gmx.c_str());
    std::printf("protocol: stage 1 soft-core steep (<= %d steps, emtol %g), stage 2 steep "
                "(<= %d steps, emtol %g); accept |Fmax| < %g, |Epot| < %g; the validator "
                "decides stage 2 at Fmax < %g\n\n",
                config.stage1.nsteps, config.stage1.emtol_kj_mol_nm, config.stage2.nsteps,
                config.stage2.emtol_kj_mol_nm, config.max_fmax_kj_mol_nm,
                config.max_abs_epot_kj_mol, config.decision_fmax_kj_mol_nm);

    auto load = [] {
      std::ifstream in("/proc/loadavg");
      std::string one, five;
      in >> one >> five;
      return one + " (1 min), " + five + " (5 min)";
    };
    std::printf("load average before: %s\n", load().c_str());
    auto naive = run_timed([&] {
      return v.validate_reference(batch);
    });
    timed naive_par;
    if (naive_parallel && used > 1) {
      naive_par = run_timed([&] {
        std::vector<md::validation_verdict> out(batch.size());
        std::vector<std::jthread> pool;
        for (unsigned w = 0; w < used; ++w)
          pool.emplace_back([&, w] {
            for (std::size_t i = w; i < batch.size(); i += used)
              out[i] = v.validate_reference(std::span(&batch[i], 1)).front();
          });
        pool.clear();
        return out;
      });
    }
    const auto before = v.stats();
    auto fast = run_timed([&] {
      return v.validate(batch);
    });
    const auto after = v.stats();
    // The same structures once more: run-input templates made, reruns trusted (the state of a
    // validator that has been running in a campaign for a while).
    auto warm = run_timed([&] {
      return v.validate(batch);
    });

    std::printf("%-28s %10s %14s %14s %10s\n", "path", "seconds", "structures/s", "s/structure",
                "accepted");
    auto row = [&](const char* label, const timed& t) {
      std::printf("%-28s %10.2f %14.2f %14.3f %7zu/%zu\n", label, t.seconds,
                  static_cast<double>(count) / t.seconds, t.seconds / static_cast<double>(count),
                  accepted(t.verdicts), count);
    };
    row("naive (one at a time)", naive);
    std::string par_label = "naive (" + std::to_string(used) + " at once)";
    if (!naive_par.verdicts.empty())
      row(par_label.c_str(), naive_par);
    row("validator", fast);
    row("validator, again (warm)", warm);
    std::printf("validator: %zu run inputs by grompp (template checks included), %zu reused; "
                "%zu reruns decided %zu structures%s\n",
                after.grompp_runs - before.grompp_runs, after.reused_inputs - before.reused_inputs,
                after.reruns - before.reruns, after.decided_by_rerun - before.decided_by_rerun,
                after.reruns_trusted ? "" : " (reruns not trusted)");
    std::printf("\nratio validator / naive one at a time: %.2fx\n", naive.seconds / fast.seconds);
    if (!naive_par.verdicts.empty())
      std::printf("ratio validator / %s: %.2fx\n", par_label.c_str(),
                  naive_par.seconds / fast.seconds);
    std::printf("ratio validator (warm) / naive one at a time: %.2fx\n",
                naive.seconds / warm.seconds);
    if (!naive_par.verdicts.empty())
      std::printf("ratio validator (warm) / %s: %.2fx\n", par_label.c_str(),
                  naive_par.seconds / warm.seconds);

    std::printf("load average after: %s\n", load().c_str());

    std::size_t agree = 0;
    std::printf("\n%3s  %-24s %-16s %-16s %12s %12s %7s %7s\n", "#", "perturbation", "naive",
                "validator", "naive Epot", "valid. Epot", "naive s", "valid s");
    for (std::size_t i = 0; i < count; ++i) {
      const auto& a = naive.verdicts[i];
      const auto& b = fast.verdicts[i];
      bool same = a.code == b.code && warm.verdicts[i].code == a.code
        && (naive_par.verdicts.empty() || naive_par.verdicts[i].code == a.code);
      agree += same ? 1 : 0;
      std::printf("%3zu  %-24s %-16s %-16s %12.4g %12.4g %7.2f %7.2f%s\n", i, name(kind_of(i)),
                  std::string{md::to_string(a.code)}.c_str(),
                  std::string{md::to_string(b.code)}.c_str(), a.epot_kj_mol, b.epot_kj_mol,
                  a.seconds, b.seconds, same ? "" : "   <-- DIFFERENT");
    }
    std::printf("\nverdicts agree: %zu/%zu%s\n", agree, count,
                agree == count ? " (all identical)" : "");
    for (std::size_t i = 0; i < count; ++i)
      if (!naive.verdicts[i].accepted)
        std::printf("  #%zu %s\n", i, naive.verdicts[i].reason.c_str());
    return agree == count ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "validator_bench: %s\n", e.what());
    return 2;
  }
}
