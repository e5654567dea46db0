#include "train.hpp"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <stdexcept>

namespace mummi::deploy {

namespace {

std::string format_duration(double seconds) {
  char buf[32];
  const auto s = static_cast<long>(seconds);
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

ml::device_kind parse_device(const std::string& name) {
  if (name == "auto")
    return ml::device_kind::automatic;
  if (name == "cpu")
    return ml::device_kind::cpu;
  if (name == "cuda")
    return ml::device_kind::cuda;
  throw std::invalid_argument("--device: '" + name + "' is not one of auto, cpu, cuda");
}

} // namespace

CLI::App* add_train_command(CLI::App& app, train_options& o) {
  auto* cmd = app.add_subcommand(
    "train", "Train the autoencoder on frame stores (a new round 0, or --from round R -> R+1)");
  cmd->add_option("frames", o.frames, "Frame stores (.h5)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out, "Model file to write (must not exist)")->required();
  cmd->add_option("--from", o.from, "Fine-tune this model into the next round")
    ->check(CLI::ExistingFile);
  cmd->add_option("--latent", o.arch.latent, "Latent dimensions (new models)")
    ->check(CLI::Range(1, 4096));
  cmd->add_option("--hidden", o.arch.hidden, "Hidden layer sizes, encoder side (new models)")
    ->delimiter(',');
  cmd->add_option("--activation", o.arch.act, "Activation (new models)")
    ->transform(CLI::CheckedTransformer(
      std::map<std::string, ml::activation>{
        {"relu", ml::activation::relu}, {"elu", ml::activation::elu}, {"tanh", ml::activation::tanh}},
      CLI::ignore_case));
  cmd->add_flag("!--no-align", o.align, "Only centre frames; do not rotate them onto a reference");
  cmd->add_option("--epochs", o.training.max_epochs, "Most epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o.training.batch_size, "Minibatch size")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", o.training.learning_rate, "Initial learning rate (Adam)")
    ->check(CLI::PositiveNumber);
  cmd->add_option("--patience", o.training.patience,
                  "Stop after this many epochs without improvement (0: never)");
  cmd->add_option("--validation", o.training.validation_fraction,
                  "Fraction of each state's frames held out (its last frames)")
    ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--seed", o.training.seed, "Seed of weights and minibatch order");
  cmd->add_option("--threads", o.training.threads, "LibTorch CPU threads (0: automatic)");
  cmd->add_option("--device", o.device, "auto, cpu or cuda");
  return cmd;
}

ml::progress_callback stderr_progress() {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  return [tty](const ml::epoch_report& e) {
    const double secs = e.elapsed.count();
    if (tty) {
      constexpr int width = 30;
      const auto done = static_cast<int>(width * e.epoch / e.max_epochs);
      std::string bar(static_cast<std::size_t>(done), '#');
      bar.resize(width, '.');
      std::fprintf(stderr,
                   "\r[%s] epoch %zu/%zu  train %.4g  validation %.4g  lr %.2g  %.0f samples/s  %s ",
                   bar.c_str(), e.epoch, e.max_epochs, e.train_loss, e.validation_loss,
                   e.learning_rate, e.samples_per_s, format_duration(secs).c_str());
      std::fflush(stderr);
      return;
    }
    if (e.improved || e.epoch % 10 == 0 || e.epoch == 1)
      std::fprintf(stderr,
                   "train: epoch %zu/%zu train %.6g validation %.6g%s lr %.3g %.0f samples/s "
                   "%.1f s\n",
                   e.epoch, e.max_epochs, e.train_loss, e.validation_loss,
                   e.improved ? " (best)" : "", e.learning_rate, e.samples_per_s, secs);
  };
}

ml::training_report train_model(const coupling::frame_block& frames, const train_options& o,
                                const ml::progress_callback& progress) {
  if (std::filesystem::exists(o.out))
    throw std::invalid_argument(o.out.string() + ": already exists; choose another --out");
  auto options = o.training;
  options.device = parse_device(o.device);
  ml::training_report report;
  if (!o.from.empty()) {
    auto parent = ml::autoencoder::load(o.from, frames.atoms);
    auto next = parent.fine_tune(frames, options, report, progress);
    next.save(o.out);
    return report;
  }
  auto arch = o.arch;
  arch.beads = frames.atoms;
  ml::preprocessing prep;
  prep.align = o.align;
  auto model = ml::autoencoder::create(arch, prep, options.seed);
  report = model.train(frames, options, progress);
  model.save(o.out);
  return report;
}

int run_train(const train_options& o) {
  auto frames = coupling::read_frames(o.frames);
  std::size_t per_label[3] = {0, 0, 0};
  for (const auto& m : frames.meta)
    ++per_label[m.label == coupling::state_a ? 0 : m.label == coupling::state_b ? 1 : 2];
  std::printf("train: %zu frames of %zu beads (state A %zu, state B %zu, unlabelled %zu)\n",
              frames.frames(), frames.atoms, per_label[0], per_label[1], per_label[2]);
  const auto report = train_model(frames, o, stderr_progress());
  if (::isatty(STDERR_FILENO))
    std::fputc('\n', stderr);
  const auto model = ml::autoencoder::load(o.out);
  const auto& last = report.epochs.back();
  std::printf("train: round %u written to %s\n", model.metadata().round, o.out.c_str());
  std::printf("train: %zu epochs%s on %s, best epoch %zu, validation loss %.6g, held-out "
              "reconstruction RMSD %.4f nm (%zu frames), %.0f samples/s, %.1f s\n",
              report.epochs.size(), report.stopped_early ? " (stopped early)" : "",
              report.device.c_str(), report.best_epoch, report.best_validation_loss,
              report.validation_rmsd_nm, report.validation_frames, last.samples_per_s,
              last.elapsed.count());
  return 0;
}

} // namespace mummi::deploy
