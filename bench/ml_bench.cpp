// Speed of mummi::ml's autoencoder: decoding latent points into structures through
// autoencoder::decode (batch 1, 64 and 1,024; every call copies its latent points in and its
// coordinates out, as the structure generator does) and training through autoencoder::train
// (batch 64 and 1,024), for two sizes:
//
//   demo   127 beads (the demo protein), hidden 256, 64, latent 32
//   paper  763 beads (mini-MuMMI's protein), hidden 1024, 256, latent 32
//
// The networks see random coordinates: speed does not depend on what the weights learnt. The
// model that is decoded from is trained for one epoch on random frames (so that it counts as
// trained and carries its preprocessing), written to a temporary model file and loaded onto
// the device, as the campaign loads a round's model.
//
// Decoding: a few warm-up calls, then calls until --seconds have passed; structures/s is the
// points decoded over the time taken. Training: one warm-up epoch (which also tells how long an
// epoch takes), then a run with enough epochs to fill --seconds (at least 3); samples/s is the
// median of the epochs' own rates (epoch_report::samples_per_s) after the first, so neither the
// preprocessing fit nor the first epoch's allocations count.
//
//   ml_bench [--size demo|paper|all] [--device cpu|cuda] [--threads N] [--seconds S]
//            [--frames N] [--quick] [--json FILE]
//
// Prints a table; --json also writes the results for bench/ml_bench.py, which runs the same
// network in PyTorch side by side. Arguments are parsed by hand: this program is also built on
// machines that have LibTorch and nothing else (MUMMI_ML_ONLY).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "mummi/ml/autoencoder.hpp"

namespace ml = mummi::ml;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

struct size_case {
  std::string name;
  ml::architecture arch;
};

struct bench_options {
  std::vector<size_case> sizes;
  ml::device_kind device = ml::device_kind::cpu;
  std::string device_name = "cpu";
  std::size_t threads = 0; ///< 0: automatic (ml::set_cpu_threads)
  double seconds = 3;      ///< per measurement
  std::size_t frames = 0;  ///< training frames (0: by device)
  std::string json_path;
};

struct result {
  std::string size;
  std::string test; ///< "decode" or "train"
  std::size_t batch = 0;
  double per_s = 0; ///< structures/s (decode) or samples/s (train)
  // decode
  std::size_t calls = 0;
  double median_call_ms = 0;
  // train
  std::size_t frames = 0;
  std::vector<double> epoch_rates;
};

size_case demo_size() {
  size_case c;
  c.name = "demo";
  c.arch.beads = 127;
  c.arch.hidden = {256, 64};
  c.arch.latent = 32;
  c.arch.act = ml::activation::elu;
  return c;
}

size_case paper_size() {
  size_case c;
  c.name = "paper";
  c.arch.beads = 763;
  c.arch.hidden = {1024, 256};
  c.arch.latent = 32;
  c.arch.act = ml::activation::elu;
  return c;
}

[[noreturn]] void usage_error(const std::string& problem) {
  std::fprintf(stderr,
               "ml_bench: %s\n"
               "usage: ml_bench [--size demo|paper|all] [--device cpu|cuda] [--threads N]\n"
               "                [--seconds S] [--frames N] [--quick] [--json FILE]\n",
               problem.c_str());
  std::exit(2);
}

std::size_t parse_count(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || text.front() == '-')
    usage_error(option + ": '" + text + "' is not a whole number >= 0");
  return static_cast<std::size_t>(v);
}

double parse_seconds(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !(v > 0) || !std::isfinite(v))
    usage_error(option + ": '" + text + "' is not a positive number of seconds");
  return v;
}

bench_options parse_args(int argc, char** argv) {
  bench_options o;
  std::string size = "all";
  bool quick = false;
  bool seconds_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("ml_bench: decode structures/s and training samples/s of mummi::ml's "
                  "autoencoder\n"
                  "  --size demo|paper|all  network size (default all)\n"
                  "  --device cpu|cuda      where LibTorch runs (default cpu)\n"
                  "  --threads N            LibTorch intra-op threads (0: automatic; default)\n"
                  "  --seconds S            time per measurement (default 3)\n"
                  "  --frames N             training frames (default 4096 on cpu, 32768 on "
                  "cuda; --quick 1024)\n"
                  "  --quick                a short smoke run (0.3 s per measurement)\n"
                  "  --json FILE            also write the results as JSON\n");
      std::exit(0);
    }
    if (arg == "--quick") {
      quick = true;
      continue;
    }
    if (i + 1 >= argc)
      usage_error(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--size") {
      size = value;
    } else if (arg == "--device") {
      if (value == "cpu")
        o.device = ml::device_kind::cpu;
      else if (value == "cuda")
        o.device = ml::device_kind::cuda;
      else
        usage_error("--device: '" + value + "' is not cpu or cuda");
      o.device_name = value;
    } else if (arg == "--threads") {
      o.threads = parse_count(arg, value);
    } else if (arg == "--seconds") {
      o.seconds = parse_seconds(arg, value);
      seconds_given = true;
    } else if (arg == "--frames") {
      o.frames = parse_count(arg, value);
      if (o.frames < 2)
        usage_error("--frames: training needs at least 2 frames");
    } else if (arg == "--json") {
      o.json_path = value;
    } else {
      usage_error("unknown option '" + arg + "'");
    }
  }
  if (size == "demo" || size == "all")
    o.sizes.push_back(demo_size());
  if (size == "paper" || size == "all")
    o.sizes.push_back(paper_size());
  if (o.sizes.empty())
    usage_error("--size: '" + size + "' is not demo, paper or all");
  if (quick && !seconds_given)
    o.seconds = 0.3;
  if (o.frames == 0)
    o.frames = quick ? 1024 : (o.device == ml::device_kind::cuda ? 32768 : 4096);
  return o;
}

/// `frames` random frames of `beads` beads (nm), labelled half A, half B.
mummi::coupling::frame_block random_frames(std::size_t beads, std::size_t frames,
                                           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> coordinate_nm(0.0F, 2.0F);
  mummi::coupling::frame_block block;
  block.atoms = beads;
  block.positions_nm.resize(frames * beads * 3);
  for (auto& v : block.positions_nm)
    v = coordinate_nm(rng);
  block.meta.resize(frames);
  for (std::size_t i = 0; i < frames; ++i) {
    block.meta[i].step = static_cast<std::int64_t>(i);
    block.meta[i].label = i < frames / 2 ? mummi::coupling::state_a : mummi::coupling::state_b;
  }
  return block;
}

ml::training_options train_options(const bench_options& o, std::size_t batch, std::size_t epochs,
                                   ml::device_kind device) {
  ml::training_options t;
  t.batch_size = batch;
  t.max_epochs = epochs;
  t.validation_fraction = 0; // every frame trains; the epoch rate is what is measured
  t.patience = 0;
  t.lr_patience = epochs + 1; // a fixed learning rate
  t.threads = o.threads;
  t.device = device;
  return t;
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// A trained-looking model of `c` on the bench's device: created, trained for one epoch on
/// random frames on the CPU, written to a model file and loaded onto the device.
ml::autoencoder decoding_model(const bench_options& o, const size_case& c) {
  auto model = ml::autoencoder::create(c.arch, {}, 1);
  model.train(random_frames(c.arch.beads, 256, 7), train_options(o, 64, 1, ml::device_kind::cpu));
  const auto path = fs::temp_directory_path()
    / ("ml_bench-" + std::to_string(::getpid()) + "-" + c.name + ".mummi-ae");
  model.save(path);
  try {
    auto loaded = ml::autoencoder::load(path, c.arch.beads, o.device);
    fs::remove(path);
    return loaded;
  } catch (...) {
    fs::remove(path);
    throw;
  }
}

result time_decode(const bench_options& o, const size_case& c, const ml::autoencoder& model,
                   std::size_t batch) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> unit(0.0F, 1.0F);
  std::vector<float> latent(batch * model.latent_size());
  for (auto& v : latent)
    v = unit(rng);
  const auto expected = batch * model.beads() * 3;
  for (int i = 0; i < 3; ++i)
    if (model.decode(latent).size() != expected)
      throw std::runtime_error("decode returned the wrong number of coordinates");
  std::vector<double> call_ms;
  double checksum = 0;
  const auto start = clock_type::now();
  double elapsed = 0;
  while (elapsed < o.seconds || call_ms.size() < 5) {
    const auto t0 = clock_type::now();
    const auto coordinates = model.decode(latent);
    const auto t1 = clock_type::now();
    checksum += static_cast<double>(coordinates.back());
    call_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
  }
  if (!std::isfinite(checksum))
    throw std::runtime_error("decode returned non-finite coordinates");
  result r;
  r.size = c.name;
  r.test = "decode";
  r.batch = batch;
  r.calls = call_ms.size();
  r.per_s = static_cast<double>(batch * r.calls) / elapsed;
  r.median_call_ms = median(call_ms);
  return r;
}

result time_training(const bench_options& o, const size_case& c,
                     const mummi::coupling::frame_block& frames, std::size_t batch) {
  // Warm-up epoch: also how long one epoch takes here.
  auto warm = ml::autoencoder::create(c.arch, {}, 1);
  const auto first = warm.train(frames, train_options(o, batch, 1, o.device));
  const double epoch_s
    = static_cast<double>(frames.frames()) / std::max(first.epochs.front().samples_per_s, 1e-9);
  const auto epochs = static_cast<std::size_t>(
    std::clamp(1.0 + std::ceil(o.seconds / std::max(epoch_s, 1e-9)), 3.0, 100.0));

  auto model = ml::autoencoder::create(c.arch, {}, 1);
  const auto report = model.train(frames, train_options(o, batch, epochs, o.device));
  result r;
  r.size = c.name;
  r.test = "train";
  r.batch = batch;
  r.frames = report.training_frames;
  for (const auto& e : report.epochs)
    r.epoch_rates.push_back(e.samples_per_s);
  r.per_s = median({r.epoch_rates.begin() + 1, r.epoch_rates.end()});
  return r;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string to_json(const bench_options& o, const std::vector<result>& results) {
  std::string s = "{\n \"program\": \"ml_bench\",\n \"torch_version\": "
    + json_string(ml::torch_version()) + ",\n \"device\": " + json_string(o.device_name)
    + ",\n \"threads\": " + std::to_string(o.threads)
    + ",\n \"seconds\": " + std::to_string(o.seconds) + ",\n \"sizes\": {";
  for (std::size_t i = 0; i < o.sizes.size(); ++i) {
    const auto& a = o.sizes[i].arch;
    s += (i ? ", " : "") + json_string(o.sizes[i].name) + ": {\"beads\": " + std::to_string(a.beads)
      + ", \"hidden\": [";
    for (std::size_t h = 0; h < a.hidden.size(); ++h)
      s += (h ? ", " : "") + std::to_string(a.hidden[h]);
    s += "], \"latent\": " + std::to_string(a.latent) + "}";
  }
  s += "},\n \"results\": [";
  char number[64];
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::snprintf(number, sizeof number, "%.6g", r.per_s);
    s += std::string(i ? ",\n  " : "\n  ") + "{\"size\": " + json_string(r.size) + ", \"test\": "
      + json_string(r.test) + ", \"batch\": " + std::to_string(r.batch) + ", \"per_s\": " + number;
    if (r.test == "decode") {
      std::snprintf(number, sizeof number, "%.6g", r.median_call_ms);
      s += ", \"calls\": " + std::to_string(r.calls) + ", \"median_call_ms\": " + number;
    } else {
      s += ", \"frames\": " + std::to_string(r.frames) + ", \"epoch_rates\": [";
      for (std::size_t e = 0; e < r.epoch_rates.size(); ++e) {
        std::snprintf(number, sizeof number, "%.6g", r.epoch_rates[e]);
        s += (e ? ", " : "") + std::string(number);
      }
      s += "]";
    }
    s += "}";
  }
  return s + "\n ]\n}\n";
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse_args(argc, argv);
  // 0: the library's automatic choice (ml::set_cpu_threads), printed as the count it set.
  o.threads = ml::set_cpu_threads(o.threads);
  if (o.device == ml::device_kind::cuda && !ml::cuda_available()) {
    std::fprintf(stderr,
                 "ml_bench: --device cuda: this build of LibTorch (%s) has no CUDA "
                 "support or no GPU is visible\n",
                 ml::torch_version().c_str());
    return 1;
  }
  std::printf("ml_bench: LibTorch %s, device %s, %zu threads, %.3g s per measurement, "
              "%zu training frames\n",
              ml::torch_version().c_str(), o.device_name.c_str(), o.threads, o.seconds, o.frames);
  std::fflush(stdout);

  std::vector<result> results;
  try {
    for (const auto& c : o.sizes) {
      const auto model = decoding_model(o, c);
      for (std::size_t batch : {1, 64, 1024}) {
        results.push_back(time_decode(o, c, model, batch));
        const auto& r = results.back();
        std::printf("%-6s decode batch %5zu: %12.1f structures/s (%zu calls, median %.3f ms)\n",
                    c.name.c_str(), batch, r.per_s, r.calls, r.median_call_ms);
        std::fflush(stdout);
      }
      const auto frames = random_frames(c.arch.beads, o.frames, 3);
      for (std::size_t batch : {64, 1024}) {
        results.push_back(time_training(o, c, frames, batch));
        const auto& r = results.back();
        std::printf("%-6s train  batch %5zu: %12.1f samples/s (%zu frames, %zu epochs)\n",
                    c.name.c_str(), batch, r.per_s, r.frames, r.epoch_rates.size());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ml_bench: %s\n", e.what());
    return 1;
  }

  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << to_json(o, results);
    out.close();
    if (!out) {
      std::fprintf(stderr, "ml_bench: cannot write %s\n", o.json_path.c_str());
      return 1;
    }
  }
  return 0;
}
