// The only translation unit that includes LibTorch (compile cost: see STYLE.md).

#include "mummi/ml/autoencoder.hpp"

#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace mummi::ml {

namespace {

// Smallest per-coordinate standard deviation used for standardization (nm): coordinates that
// hardly move in the training frames are not blown up into noise.
constexpr double min_std_nm = 1e-3;
// Frames per forward pass when evaluating (validation loss, encode/decode of large inputs).
constexpr std::int64_t eval_batch = 4096;

// torch::manual_seed is process-wide: creating a network from a seed is serialised.
std::mutex& seed_mutex() {
  static std::mutex m;
  return m;
}

void add_activation(torch::nn::Sequential& seq, activation a) {
  switch (a) {
    case activation::relu:
      seq->push_back(torch::nn::ReLU());
      break;
    case activation::elu:
      seq->push_back(torch::nn::ELU());
      break;
    case activation::tanh:
      seq->push_back(torch::nn::Tanh());
      break;
  }
}

// beads*3 -> hidden... -> latent (activation after every layer but the last).
torch::nn::Sequential make_stack(std::vector<std::int64_t> sizes, activation a) {
  torch::nn::Sequential seq;
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    seq->push_back(torch::nn::Linear(sizes[i], sizes[i + 1]));
    if (i + 2 < sizes.size())
      add_activation(seq, a);
  }
  return seq;
}

std::vector<std::int64_t> layer_sizes(const architecture& arch) {
  std::vector<std::int64_t> s{static_cast<std::int64_t>(arch.beads * 3)};
  for (auto h : arch.hidden)
    s.push_back(static_cast<std::int64_t>(h));
  s.push_back(static_cast<std::int64_t>(arch.latent));
  return s;
}

std::vector<std::string> architecture_problems(const architecture& arch) {
  std::vector<std::string> p;
  if (arch.beads == 0)
    p.emplace_back("bead count is 0");
  if (arch.latent == 0)
    p.emplace_back("latent size is 0");
  for (std::size_t i = 0; i < arch.hidden.size(); ++i)
    if (arch.hidden[i] == 0)
      p.push_back("hidden layer " + std::to_string(i + 1) + " has 0 units");
  // Guard against sizes that would exhaust memory when building the layers.
  const double limit = 1e9;
  auto sizes = layer_sizes(arch);
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i)
    if (static_cast<double>(sizes[i]) * static_cast<double>(sizes[i + 1]) > limit)
      p.push_back("layer " + std::to_string(i + 1) + " (" + std::to_string(sizes[i]) + " x " +
                  std::to_string(sizes[i + 1]) + ") is too large");
  return p;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items)
    s += (s.empty() ? "" : "; ") + i;
  return s;
}

// One copy, from wherever `t` lives straight into the vector.
std::vector<float> to_vector(const torch::Tensor& t) {
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  torch::from_blob(v.data(), t.sizes(), torch::kFloat32).copy_(t.detach());
  return v;
}

named_tensor to_named(const torch::Tensor& t) {
  named_tensor n;
  for (auto d : t.sizes())
    n.shape.push_back(d);
  n.values = to_vector(t);
  return n;
}

torch::Device pick_device(device_kind kind) {
  switch (kind) {
    case device_kind::cpu:
      return torch::kCPU;
    case device_kind::cuda:
      if (!torch::cuda::is_available())
        throw std::runtime_error("a CUDA device was asked for, but this build of LibTorch has "
                                 "no CUDA support or no GPU is visible");
      return {torch::kCUDA, 0};
    case device_kind::automatic:
      return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  }
  return torch::kCPU;
}


// Centres frames [F, B, 3] on their centroids.
torch::Tensor centred(const torch::Tensor& x) {
  return x - x.mean(1, true);
}

// Rotates centred frames [F, B, 3] onto a centred reference [B, 3] (Kabsch: the rotation
// minimising the RMSD, without reflection).
torch::Tensor aligned(const torch::Tensor& x, const torch::Tensor& reference) {
  auto h = torch::matmul(x.transpose(1, 2), reference);  // [F, 3, 3]
  auto [u, s, vh] = torch::linalg_svd(h, false);
  auto det = torch::linalg_det(torch::matmul(u, vh));  // [F], +1 or -1
  auto d = 1 - 2 * (det < 0).to(x.scalar_type());
  auto fix = torch::ones({x.size(0), 3}, x.options());
  fix.select(1, 2).copy_(d);
  auto q = torch::matmul(u * fix.unsqueeze(1), vh);  // U diag(1, 1, d) V^T
  return torch::matmul(x, q);
}

// Per-frame RMSD between two [F, B*3] coordinate tensors, averaged over frames.
double mean_rmsd(const torch::Tensor& a, const torch::Tensor& b, std::int64_t beads) {
  auto d = (a - b).reshape({a.size(0), beads, 3});
  auto per_frame = d.pow(2).sum(2).mean(1).sqrt();
  return per_frame.mean().item<double>();
}

} // namespace

bool cuda_available() {
  return torch::cuda::is_available();
}

std::size_t set_cpu_threads(std::size_t threads) {
  auto n = threads;
  if (n == 0)
    n = at::hasMKL() ? std::max(1u, std::thread::hardware_concurrency()) : 1;
  torch::set_num_threads(static_cast<int>(n));
  return n;
}

std::string torch_version() {
  return TORCH_VERSION;
}

struct autoencoder::impl {
  model_metadata meta;
  torch::Device device = torch::kCPU;

  // A native model: the two stacks and the preprocessing tensors (CPU until moved).
  torch::nn::Sequential encoder{nullptr};
  torch::nn::Sequential decoder{nullptr};
  torch::Tensor mean;       // [B*3] standardization mean (after centring and alignment)
  torch::Tensor std_dev;    // [B*3]
  torch::Tensor reference;  // [B, 3] centred alignment reference
  torch::Tensor origin;     // [3] where decoded structures are centred (nm)
  // decode's output = network output * std_dev + out_shift (mean plus the tiled origin): one
  // fused operation per call; refreshed by `to`, which every change of the statistics ends with.
  torch::Tensor out_shift;

  // A TorchScript model (optional standardization buffers).
  std::optional<torch::jit::Module> script;

  static std::unique_ptr<impl> build(const architecture& arch, const preprocessing& prep,
                                     std::uint64_t seed);
  static std::unique_ptr<impl> load_torchscript(const std::filesystem::path& path,
                                                std::optional<std::size_t> expected_beads,
                                                torch::Device device);

  bool trained() const {
    return script.has_value() || meta.training_frames > 0;
  }

  std::int64_t beads() const {
    return static_cast<std::int64_t>(meta.arch.beads);
  }

  void to(torch::Device d) {
    device = d;
    if (script) {
      script->to(d);
    } else {
      encoder->to(d);
      decoder->to(d);
    }
    if (mean.defined())
      mean = mean.to(d);
    if (std_dev.defined())
      std_dev = std_dev.to(d);
    if (reference.defined())
      reference = reference.to(d);
    if (origin.defined())
      origin = origin.to(d);
    out_shift = torch::Tensor();
    if (origin.defined())
      out_shift = origin.repeat({beads()});
    if (mean.defined())
      out_shift = out_shift.defined() ? out_shift + mean : mean;
  }

  // Raw frames [F, B*3] (nm) -> centred/aligned frames [F, B*3] (nm).
  torch::Tensor prepare(const torch::Tensor& raw) const {
    if (script)
      return raw;
    auto x = raw.reshape({raw.size(0), beads(), 3});
    if (meta.prep.centre || meta.prep.align)
      x = centred(x);
    if (meta.prep.align)
      x = aligned(x, reference);
    return x.reshape({raw.size(0), beads() * 3});
  }

  torch::Tensor standardize(const torch::Tensor& x) const {
    return mean.defined() ? (x - mean) / std_dev : x;
  }
  torch::Tensor destandardize(const torch::Tensor& z) const {
    return mean.defined() ? z * std_dev + mean : z;
  }

  // Standardized [F, B*3] -> latent [F, L], and back.
  torch::Tensor encode_std(const torch::Tensor& z) {
    if (script)
      return script->get_method("encode")({z}).toTensor();
    return encoder->forward(z);
  }
  torch::Tensor decode_std(const torch::Tensor& l) {
    if (script)
      return script->get_method("decode")({l}).toTensor();
    return decoder->forward(l);
  }

  // Runs `f` over `x` in slices of eval_batch rows and concatenates the results.
  template <class F>
  torch::Tensor batched(const torch::Tensor& x, F&& f) {
    if (x.size(0) <= eval_batch)
      return f(x);
    std::vector<torch::Tensor> parts;
    for (std::int64_t i = 0; i < x.size(0); i += eval_batch)
      parts.push_back(f(x.slice(0, i, std::min(x.size(0), i + eval_batch))));
    return torch::cat(parts);
  }

  void require_trained() const {
    if (!trained())
      throw std::logic_error("the autoencoder is untrained: train it or load a trained model");
  }

  // The caller's values on the model's device. Our own operations never write to their input,
  // so on the CPU the caller's memory is used as it is; a TorchScript module gets a copy.
  torch::Tensor as_tensor(std::span<const float> values, std::vector<std::int64_t> shape) const {
    auto t = torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat32);
    if (device.is_cpu())
      return script ? t.clone() : t;
    return t.to(device);
  }

  torch::Tensor frames_tensor(std::span<const float> coords) const {
    const auto per = static_cast<std::size_t>(beads()) * 3;
    if (coords.empty() || coords.size() % per != 0)
      throw std::invalid_argument("coordinates: " + std::to_string(coords.size()) +
                                  " values is not a whole number of frames of " +
                                  std::to_string(beads()) + " beads");
    auto frames = static_cast<std::int64_t>(coords.size() / per);
    return as_tensor(coords, {frames, beads() * 3});
  }

  model_contents contents() const {
    if (script)
      throw std::logic_error("a TorchScript model cannot be written as a mummi model file");
    model_contents c;
    c.meta = meta;
    for (const auto& p : encoder->named_parameters())
      c.tensors["encoder." + p.key()] = to_named(p.value());
    for (const auto& p : decoder->named_parameters())
      c.tensors["decoder." + p.key()] = to_named(p.value());
    c.tensors["prep.mean"] = to_named(mean);
    c.tensors["prep.std"] = to_named(std_dev);
    c.tensors["prep.reference"] = to_named(reference);
    c.tensors["prep.origin"] = to_named(origin);
    return c;
  }

  // Copies the tensors of `c` into the freshly built stacks; every mismatch is named.
  void assign(const model_contents& c, const std::filesystem::path& source) {
    std::vector<std::string> problems;
    std::map<std::string, torch::Tensor> wanted;
    for (const auto& p : encoder->named_parameters())
      wanted["encoder." + p.key()] = p.value();
    for (const auto& p : decoder->named_parameters())
      wanted["decoder." + p.key()] = p.value();
    const auto b = beads();
    wanted["prep.mean"] = mean = torch::zeros({b * 3});
    wanted["prep.std"] = std_dev = torch::ones({b * 3});
    wanted["prep.reference"] = reference = torch::zeros({b, 3});
    wanted["prep.origin"] = origin = torch::zeros({3});
    for (const auto& [name, t] : c.tensors)
      if (!wanted.contains(name))
        problems.push_back("unexpected tensor '" + name + "'");
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : wanted) {
      auto it = c.tensors.find(name);
      if (it == c.tensors.end()) {
        problems.push_back("tensor '" + name + "' is missing");
        continue;
      }
      if (it->second.shape != t.sizes().vec()) {
        problems.push_back("tensor '" + name + "' has the wrong shape for this architecture");
        continue;
      }
      t.copy_(torch::from_blob(const_cast<float*>(it->second.values.data()), t.sizes(),
                               torch::kFloat32));
    }
    if (!torch::isfinite(std_dev).all().item<bool>() || (std_dev <= 0).any().item<bool>())
      problems.emplace_back("standardization has non-positive or non-finite deviations");
    if (!problems.empty())
      throw model_error(source, join(problems));
  }
};

autoencoder::autoencoder(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
autoencoder::autoencoder(autoencoder&&) noexcept = default;
autoencoder& autoencoder::operator=(autoencoder&&) noexcept = default;
autoencoder::~autoencoder() = default;

std::unique_ptr<autoencoder::impl> autoencoder::impl::build(const architecture& arch,
                                                          const preprocessing& prep,
                                                          std::uint64_t seed) {
  if (auto p = architecture_problems(arch); !p.empty())
    throw std::invalid_argument("autoencoder architecture: " + join(p));
  auto s = std::make_unique<autoencoder::impl>();
  s->meta.arch = arch;
  s->meta.prep = prep;
  s->meta.created_by = std::string("mummi ") + MUMMI_VERSION;
  auto sizes = layer_sizes(arch);
  {
    std::lock_guard lock(seed_mutex());
    torch::manual_seed(seed);
    s->encoder = make_stack(sizes, arch.act);
    std::reverse(sizes.begin(), sizes.end());
    s->decoder = make_stack(sizes, arch.act);
  }
  const auto b = static_cast<std::int64_t>(arch.beads);
  s->mean = torch::zeros({b * 3});
  s->std_dev = torch::ones({b * 3});
  s->reference = torch::zeros({b, 3});
  s->origin = torch::zeros({3});
  s->to(torch::kCPU);
  return s;
}

autoencoder autoencoder::create(const architecture& arch, const preprocessing& prep,
                                std::uint64_t seed) {
  return autoencoder(impl::build(arch, prep, seed));
}

namespace {

// Reads an integer attribute of a TorchScript module, if it has one.
std::optional<std::int64_t> int_attr(const torch::jit::Module& m, const std::string& name) {
  if (!m.hasattr(name))
    return std::nullopt;
  auto v = m.attr(name);
  if (!v.isInt())
    return std::nullopt;
  return v.toInt();
}

std::optional<torch::Tensor> tensor_attr(const torch::jit::Module& m, const std::string& name) {
  if (!m.hasattr(name))
    return std::nullopt;
  auto v = m.attr(name);
  if (!v.isTensor())
    return std::nullopt;
  return v.toTensor().detach().to(torch::kFloat32).reshape({-1});
}

} // namespace

std::unique_ptr<autoencoder::impl>
autoencoder::impl::load_torchscript(const std::filesystem::path& path,
                                    std::optional<std::size_t> expected_beads,
                                    torch::Device device) {
  auto s = std::make_unique<autoencoder::impl>();
  try {
    s->script = torch::jit::load(path.string(), torch::kCPU);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw model_error(path, "not a loadable TorchScript module: " +
                              what.substr(0, what.find('\n')));
  }
  auto& m = *s->script;
  m.eval();
  std::vector<std::string> problems;
  if (!m.find_method("encode"))
    problems.emplace_back("the TorchScript module has no 'encode' method");
  if (!m.find_method("decode"))
    problems.emplace_back("the TorchScript module has no 'decode' method");
  if (!problems.empty())
    throw model_error(path, join(problems));
  auto mean = tensor_attr(m, "mean");
  auto std_dev = tensor_attr(m, "std");
  if (mean.has_value() != std_dev.has_value())
    throw model_error(path, "the TorchScript module has only one of the 'mean' and 'std' "
                            "attributes; give both or neither");
  std::optional<std::size_t> beads;
  if (auto n = int_attr(m, "n_beads"); n && *n > 0)
    beads = static_cast<std::size_t>(*n);
  else if (mean && mean->numel() % 3 == 0)
    beads = static_cast<std::size_t>(mean->numel() / 3);
  else
    beads = expected_beads;
  if (!beads)
    throw model_error(path, "cannot tell the TorchScript module's bead count: give it an "
                            "integer attribute 'n_beads' (or 'mean'/'std' buffers)");
  if (expected_beads && *beads != *expected_beads)
    throw model_error(path, "made for " + std::to_string(*beads) + " beads, but " +
                              std::to_string(*expected_beads) + " are expected");
  if (mean && (mean->numel() != static_cast<std::int64_t>(*beads * 3) ||
               std_dev->numel() != mean->numel()))
    throw model_error(path, "the 'mean'/'std' attributes do not have 3 values per bead");
  s->meta.arch.beads = *beads;
  s->meta.arch.hidden.clear();
  s->meta.prep.centre = false;
  s->meta.prep.align = false;
  s->meta.created_by = "torchscript";
  if (mean) {
    s->mean = *mean;
    s->std_dev = *std_dev;
  }
  // The latent size: encode one zero frame.
  try {
    torch::InferenceMode guard;
    auto z = torch::zeros({1, static_cast<std::int64_t>(*beads * 3)});
    auto l = s->encode_std(z);
    if (l.dim() != 2 || l.size(0) != 1)
      throw model_error(path, "encode of one frame returned a tensor of shape " +
                                c10::str(l.sizes()) + ", not [1, latent]");
    s->meta.arch.latent = static_cast<std::size_t>(l.size(1));
    auto back = s->decode_std(l);
    if (back.dim() != 2 || back.size(0) != 1 || back.size(1) != z.size(1))
      throw model_error(path, "decode of one latent point returned a tensor of shape " +
                                c10::str(back.sizes()) + ", not [1, " +
                                std::to_string(z.size(1)) + "]");
  } catch (const model_error&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw model_error(path, "encode/decode of a " + std::to_string(*beads) +
                              "-bead frame failed: " + what.substr(0, what.find('\n')));
  }
  s->to(device);
  return s;
}

autoencoder autoencoder::load(const std::filesystem::path& path,
                              std::optional<std::size_t> expected_beads, device_kind device) {
  const auto dev = pick_device(device);
  if (looks_like_torchscript(path))
    return autoencoder(impl::load_torchscript(path, expected_beads, dev));
  auto c = read_model_file(path);
  if (auto p = architecture_problems(c.meta.arch); !p.empty())
    throw model_error(path, "architecture: " + join(p));
  if (expected_beads && c.meta.arch.beads != *expected_beads)
    throw model_error(path, "made for " + std::to_string(c.meta.arch.beads) + " beads, but " +
                              std::to_string(*expected_beads) + " are expected");
  auto s = impl::build(c.meta.arch, c.meta.prep, 0);
  s->assign(c, path);
  s->meta = c.meta;
  s->to(dev);
  return autoencoder(std::move(s));
}

const model_metadata& autoencoder::metadata() const noexcept {
  return impl_->meta;
}
std::size_t autoencoder::beads() const noexcept {
  return impl_->meta.arch.beads;
}
std::size_t autoencoder::latent_size() const noexcept {
  return impl_->meta.arch.latent;
}
bool autoencoder::is_torchscript() const noexcept {
  return impl_->script.has_value();
}
bool autoencoder::is_trained() const noexcept {
  return impl_->trained();
}

model_contents autoencoder::contents() const {
  return impl_->contents();
}

void autoencoder::save(const std::filesystem::path& path) const {
  write_model_file(path, contents());
}

std::vector<float> autoencoder::encode(std::span<const float> coordinates_nm) const {
  impl_->require_trained();
  torch::InferenceMode guard;
  auto x = impl_->frames_tensor(coordinates_nm);
  return to_vector(impl_->batched(x, [this](const torch::Tensor& part) {
    return impl_->encode_std(impl_->standardize(impl_->prepare(part)));
  }));
}

std::vector<float> autoencoder::decode(std::span<const float> latent) const {
  impl_->require_trained();
  const auto l = static_cast<std::int64_t>(latent_size());
  if (latent.empty() || latent.size() % static_cast<std::size_t>(l) != 0)
    throw std::invalid_argument("latent: " + std::to_string(latent.size()) +
                                " values is not a whole number of " + std::to_string(l) +
                                "-dimensional points");
  torch::InferenceMode guard;
  auto points = static_cast<std::int64_t>(latent.size()) / l;
  auto z = impl_->as_tensor(latent, {points, l});
  return to_vector(impl_->batched(z, [this](const torch::Tensor& part) {
    auto x = impl_->decode_std(part);
    if (impl_->std_dev.defined())
      return torch::addcmul(impl_->out_shift, x, impl_->std_dev);
    return impl_->out_shift.defined() ? x + impl_->out_shift : x;
  }));
}

std::vector<float> autoencoder::reconstruct(std::span<const float> coordinates_nm) const {
  impl_->require_trained();
  torch::InferenceMode guard;
  auto x = impl_->frames_tensor(coordinates_nm);
  return to_vector(impl_->batched(x, [this](const torch::Tensor& part) {
    return impl_->destandardize(
      impl_->decode_std(impl_->encode_std(impl_->standardize(impl_->prepare(part)))));
  }));
}

std::vector<float> autoencoder::preprocess(std::span<const float> coordinates_nm) const {
  impl_->require_trained();
  torch::InferenceMode guard;
  return to_vector(impl_->prepare(impl_->frames_tensor(coordinates_nm)));
}

namespace {

// Validation indices: `fraction` of each label's frames, its last ones or a random choice.
std::vector<std::size_t> validation_split(const coupling::frame_block& frames, double fraction,
                                          bool tail, std::uint64_t seed) {
  std::map<std::int32_t, std::vector<std::size_t>> by_label;
  for (std::size_t i = 0; i < frames.frames(); ++i)
    by_label[frames.meta[i].label].push_back(i);
  std::mt19937_64 rng(seed ^ 0x5a17u);
  std::vector<std::size_t> out;
  for (auto& [label, idx] : by_label) {
    if (!tail)
      std::shuffle(idx.begin(), idx.end(), rng);
    auto n = static_cast<std::size_t>(std::lround(fraction * static_cast<double>(idx.size())));
    if (fraction > 0 && n == 0 && idx.size() > 1)
      n = 1;
    out.insert(out.end(), idx.end() - static_cast<std::ptrdiff_t>(n), idx.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

torch::Tensor index_tensor(const std::vector<std::size_t>& idx) {
  std::vector<std::int64_t> v(idx.begin(), idx.end());
  return torch::tensor(v, torch::kInt64);
}

void check_options(const training_options& o, std::size_t frames) {
  std::vector<std::string> p;
  if (o.batch_size == 0)
    p.emplace_back("batch size is 0");
  if (o.max_epochs == 0)
    p.emplace_back("max epochs is 0");
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate))
    p.emplace_back("learning rate must be positive");
  if (!(o.validation_fraction >= 0 && o.validation_fraction < 1))
    p.emplace_back("validation fraction must be in [0, 1)");
  if (!(o.lr_factor > 0 && o.lr_factor <= 1))
    p.emplace_back("learning-rate factor must be in (0, 1]");
  if (!(o.weight_decay >= 0))
    p.emplace_back("weight decay must be >= 0");
  if (frames < 2)
    p.push_back("training needs at least 2 frames, got " + std::to_string(frames));
  if (!p.empty())
    throw std::invalid_argument("training options: " + join(p));
}

} // namespace

training_report autoencoder::train(const coupling::frame_block& frames,
                                   const training_options& options,
                                   const progress_callback& progress) {
  auto& s = *impl_;
  if (s.script)
    throw std::logic_error("a TorchScript model cannot be trained here; train it in PyTorch");
  if (frames.atoms != beads())
    throw std::invalid_argument("training frames have " + std::to_string(frames.atoms) +
                                " beads, the model " + std::to_string(beads()));
  if (frames.positions_nm.size() != frames.frames() * frames.atoms * 3)
    throw std::invalid_argument("training frames: positions do not match the frame count");
  check_options(options, frames.frames());
  set_cpu_threads(options.threads);
  const auto device = pick_device(options.device);
  s.to(torch::kCPU);

  training_report report;
  report.device = device.str();
  report.validation_indices = validation_split(frames, options.validation_fraction,
                                                 options.hold_out_tail, options.seed);
  std::vector<std::size_t> train_idx;
  {
    std::vector<bool> is_val(frames.frames(), false);
    for (auto i : report.validation_indices)
      is_val[i] = true;
    for (std::size_t i = 0; i < frames.frames(); ++i)
      if (!is_val[i])
        train_idx.push_back(i);
  }
  report.training_frames = train_idx.size();
  report.validation_frames = report.validation_indices.size();

  const auto b = s.beads();
  auto raw = torch::from_blob(const_cast<float*>(frames.positions_nm.data()),
                              {static_cast<std::int64_t>(frames.frames()), b * 3},
                              torch::kFloat32);
  if (!torch::isfinite(raw).all().item<bool>())
    throw std::invalid_argument("training frames hold non-finite coordinates");

  // Fit the preprocessing on the training split of a new model: centroid, alignment reference
  // (the mean structure, refined twice), standardization.
  torch::Tensor prepared;
  {
    torch::NoGradGuard no_grad;
    auto train_raw = raw.index_select(0, index_tensor(train_idx));
    if (!s.trained()) {
      auto x = train_raw.reshape({-1, b, 3});
      s.origin = x.mean(1).mean(0);
      if (s.meta.prep.align) {
        auto c = centred(x);
        s.reference = c[0].clone();
        for (int round = 0; round < 3; ++round) {
          s.reference = aligned(c, s.reference).mean(0);
          s.reference = s.reference - s.reference.mean(0, true);
        }
      }
      auto p = s.prepare(train_raw);
      s.mean = p.mean(0);
      s.std_dev = p.std(0).clamp_min(min_std_nm);
    }
    prepared = s.prepare(raw.clone());
  }
  auto data = s.standardize(prepared).to(device);
  s.to(device);

  auto train_t = data.index_select(0, index_tensor(train_idx).to(device));
  auto val_t = report.validation_indices.empty()
                 ? torch::Tensor()
                 : data.index_select(0, index_tensor(report.validation_indices).to(device));

  std::vector<torch::Tensor> params;
  for (auto& p : s.encoder->parameters())
    params.push_back(p);
  for (auto& p : s.decoder->parameters())
    params.push_back(p);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(options.learning_rate)
                                    .weight_decay(options.weight_decay));

  auto evaluate = [&](const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    s.encoder->eval();
    s.decoder->eval();
    double sum = 0;
    for (std::int64_t i = 0; i < x.size(0); i += eval_batch) {
      auto part = x.slice(0, i, std::min(x.size(0), i + eval_batch));
      sum += torch::mse_loss(s.decoder->forward(s.encoder->forward(part)), part, at::Reduction::Sum)
               .item<double>();
    }
    return sum / static_cast<double>(x.numel());
  };

  std::mt19937_64 rng(options.seed);
  std::vector<std::int64_t> order(train_idx.size());
  double lr = options.learning_rate;
  double best = std::numeric_limits<double>::infinity();
  std::size_t since_best = 0, since_lr_change = 0;
  std::vector<torch::Tensor> best_weights;
  const auto start = std::chrono::steady_clock::now();
  const auto n_train = static_cast<std::int64_t>(train_idx.size());
  const auto batch = static_cast<std::int64_t>(options.batch_size);

  for (std::size_t epoch = 1; epoch <= options.max_epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    auto perm = torch::tensor(order, torch::kInt64).to(device);
    s.encoder->train();
    s.decoder->train();
    double loss_sum = 0;
    for (std::int64_t i = 0; i < n_train; i += batch) {
      auto x = train_t.index_select(0, perm.slice(0, i, std::min(n_train, i + batch)));
      adam.zero_grad();
      auto loss = torch::mse_loss(s.decoder->forward(s.encoder->forward(x)), x);
      loss.backward();
      adam.step();
      loss_sum += loss.item<double>() * static_cast<double>(x.size(0));
    }
    const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();

    epoch_report e;
    e.epoch = epoch;
    e.max_epochs = options.max_epochs;
    e.train_loss = loss_sum / static_cast<double>(n_train);
    e.validation_loss = val_t.defined() ? evaluate(val_t) : e.train_loss;
    e.learning_rate = lr;
    e.samples_per_s = secs > 0 ? static_cast<double>(n_train) / secs : 0;
    e.elapsed = std::chrono::steady_clock::now() - start;
    e.improved = e.validation_loss < best;
    if (e.improved) {
      best = e.validation_loss;
      report.best_epoch = epoch;
      since_best = 0;
      since_lr_change = 0;
      best_weights.clear();
      for (auto& p : params)
        best_weights.push_back(p.detach().clone());
    } else {
      ++since_best;
      ++since_lr_change;
    }
    report.epochs.push_back(e);
    if (progress)
      progress(e);
    if (!std::isfinite(e.train_loss))
      break;
    if (options.patience > 0 && since_best >= options.patience) {
      report.stopped_early = epoch < options.max_epochs;
      break;
    }
    if (since_lr_change >= options.lr_patience && lr > options.min_learning_rate) {
      lr = std::max(options.min_learning_rate, lr * options.lr_factor);
      for (auto& group : adam.param_groups())
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      since_lr_change = 0;
    }
  }
  if (best_weights.empty())
    throw std::runtime_error("training diverged: the loss was not finite from the first epoch "
                             "(lower the learning rate)");
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i)
      params[i].copy_(best_weights[i]);
  }
  s.encoder->eval();
  s.decoder->eval();
  report.best_validation_loss = best;

  // Reconstruction RMSD (nm) of the validation frames (the training frames when there are none).
  {
    torch::NoGradGuard no_grad;
    auto x = val_t.defined() ? val_t : train_t;
    auto back = s.batched(x, [&s](const torch::Tensor& part) {
      return s.decoder->forward(s.encoder->forward(part));
    });
    report.validation_rmsd_nm = mean_rmsd(s.destandardize(back), s.destandardize(x), b);
  }

  std::vector<std::int32_t> labels;
  for (const auto& m : frames.meta)
    labels.push_back(m.label);
  s.meta.data_digest = frames_digest(frames.positions_nm, labels);
  s.meta.training_frames = frames.frames();
  s.meta.validation_rmsd_nm = report.validation_rmsd_nm;
  s.to(torch::kCPU);
  return report;
}

autoencoder autoencoder::fine_tune(const coupling::frame_block& frames,
                                   const training_options& options, training_report& report,
                                   const progress_callback& progress) const {
  impl_->require_trained();
  if (impl_->script)
    throw std::logic_error("a TorchScript model cannot be fine-tuned here; train it in PyTorch");
  auto c = contents();
  auto s = impl::build(c.meta.arch, c.meta.prep, 0);
  s->assign(c, "(in memory)");
  s->meta = c.meta;
  autoencoder next(std::move(s));
  report = next.train(frames, options, progress);
  next.impl_->meta.round = impl_->meta.round + 1;
  next.impl_->meta.parent_digest = impl_->meta.data_digest;
  return next;
}

state_ensembles encode_states(const autoencoder& model, const coupling::frame_block& frames) {
  std::vector<float> a, b;
  for (std::size_t i = 0; i < frames.frames(); ++i) {
    auto* to = frames.meta[i].label == coupling::state_a   ? &a
               : frames.meta[i].label == coupling::state_b ? &b
                                                           : nullptr;
    if (to != nullptr)
      to->insert(to->end(), frames.frame(i).begin(), frames.frame(i).end());
  }
  if (a.empty() || b.empty())
    throw std::invalid_argument("the frames hold no state-" + std::string(a.empty() ? "A" : "B") +
                                " frame (label " +
                                std::to_string(a.empty() ? coupling::state_a : coupling::state_b) +
                                ")");
  state_ensembles s;
  s.a.dims = s.b.dims = model.latent_size();
  s.a.values = model.encode(a);
  s.b.values = model.encode(b);
  return s;
}

double rmsd_nm(std::span<const float> a, std::span<const float> b, std::size_t beads) {
  if (a.size() != b.size() || beads == 0 || a.size() % (beads * 3) != 0)
    throw std::invalid_argument("rmsd_nm: coordinate sets of different or partial sizes");
  const auto frames = a.size() / (beads * 3);
  if (frames == 0)
    return 0;
  double total = 0;
  for (std::size_t f = 0; f < frames; ++f) {
    double sum = 0;
    for (std::size_t i = f * beads * 3; i < (f + 1) * beads * 3; ++i) {
      const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      sum += d * d;
    }
    total += std::sqrt(sum / static_cast<double>(beads));
  }
  return total / static_cast<double>(frames);
}

} // namespace mummi::ml
