// The generator actor: a batch of latent points from the demo model's own encodings comes back
// with exactly the coordinates the autoencoder decodes (ids, lambda and sampler kept), a batch
// with one wrong-size latent is rejected naming that structure, an empty batch is answered as
// is, and a missing model file fails the spawn naming the path.

#include "../support/actor_system.hpp"
#include "mummi/actors/generator_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace msg = mummi::messages;
namespace ml = mummi::ml;
namespace act = mummi::actors;
using namespace std::chrono_literals;

namespace {

const std::filesystem::path data_dir = MUMMI_SOURCE_DATA_DIR;
const std::filesystem::path model_path = data_dir / "demo" / "model.ae";
const std::filesystem::path frames_path = data_dir / "demo" / "frames.h5";

act::generator_actor_config config() {
  act::generator_actor_config c;
  c.model_path = model_path;
  return c;
}

/// The latents of every structure of `batch`, one after another.
std::vector<float> all_latents(const msg::structure_batch& batch) {
  std::vector<float> out;
  for (const auto& s : batch.structures)
    out.insert(out.end(), s.latent.begin(), s.latent.end());
  return out;
}

/// The `i`-th run of `size` values of `values`.
std::vector<float> slice(const std::vector<float>& values, std::size_t i, std::size_t size) {
  const auto first = values.begin() + static_cast<std::ptrdiff_t>(i * size);
  return {first, first + static_cast<std::ptrdiff_t>(size)};
}

class generator_actor_test : public ::testing::Test {
protected:
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};

  /// The reply to a batch: a structure_batch or an error_reply.
  std::variant<msg::structure_batch, msg::error_reply> generate(const caf::actor& a,
                                                                msg::structure_batch batch) {
    return mummi::test::ask<msg::structure_batch>(sys, a, std::move(batch), 30s, "the batch");
  }

  /// Five demo frames encoded by the demo model, as a batch with ids 101, 102, ...
  msg::structure_batch encoded_batch(const ml::autoencoder& model) {
    const auto frames = mummi::coupling::frame_store::open(frames_path).read(0, 5);
    EXPECT_EQ(frames.atoms, model.beads());
    const std::vector<float> z = model.encode(frames.positions_nm);
    const std::size_t n = model.latent_size();
    EXPECT_EQ(z.size(), 5 * n);
    msg::structure_batch batch;
    batch.request_id = 7;
    for (std::size_t i = 0; i < 5; ++i) {
      msg::structure s;
      s.id = 101 + i;
      s.latent.assign(z.begin() + static_cast<std::ptrdiff_t>(i * n),
                      z.begin() + static_cast<std::ptrdiff_t>((i + 1) * n));
      s.lambda = 0.25f * static_cast<float>(i);
      s.sampler = i % 2 == 0 ? "ot" : "random";
      batch.structures.push_back(std::move(s));
    }
    return batch;
  }
};

TEST_F(generator_actor_test, decodes_a_batch_exactly_as_the_autoencoder_does) {
  const auto model = ml::autoencoder::load(model_path);
  const msg::structure_batch sent = encoded_batch(model);
  auto a = act::spawn_generator_actor(sys, config());
  auto reply = generate(a, sent);
  ASSERT_TRUE(std::holds_alternative<msg::structure_batch>(reply))
    << std::get<msg::error_reply>(reply).message;
  const auto& got = std::get<msg::structure_batch>(reply);
  EXPECT_EQ(got.request_id, sent.request_id);
  ASSERT_EQ(got.structures.size(), sent.structures.size());
  const std::vector<float> expected = model.decode(all_latents(sent));
  const std::size_t per_structure = model.beads() * 3;
  ASSERT_EQ(expected.size(), sent.structures.size() * per_structure);
  for (std::size_t i = 0; i < sent.structures.size(); ++i) {
    const auto& s = sent.structures[i];
    const auto& g = got.structures[i];
    EXPECT_EQ(g.id, s.id);
    EXPECT_EQ(g.latent, s.latent);
    EXPECT_EQ(g.lambda, s.lambda);
    EXPECT_EQ(g.sampler, s.sampler);
    EXPECT_EQ(g.coords_nm, slice(expected, i, per_structure)) << "structure " << s.id;
  }
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(generator_actor_test, a_wrong_size_latent_rejects_the_whole_batch) {
  const auto model = ml::autoencoder::load(model_path);
  msg::structure_batch sent = encoded_batch(model);
  sent.structures[3].latent.push_back(0.5f);
  auto a = act::spawn_generator_actor(sys, config());
  auto reply = generate(a, sent);
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(reply));
  const auto& r = std::get<msg::error_reply>(reply);
  EXPECT_EQ(r.code, msg::error_code::rejected);
  const std::string n = std::to_string(model.latent_size());
  const std::string bad = std::to_string(model.latent_size() + 1);
  EXPECT_NE(r.message.find("structure 104 has a latent of " + bad), std::string::npos)
    << r.message;
  EXPECT_NE(r.message.find("latent size is " + n), std::string::npos) << r.message;
  for (const char* fine : {"structure 101 ", "structure 102 ", "structure 103 ", "structure 105 "})
    EXPECT_EQ(r.message.find(fine), std::string::npos) << r.message;

  // The actor keeps serving: the same batch with the latent fixed decodes.
  sent.structures[3].latent.pop_back();
  auto again = generate(a, sent);
  ASSERT_TRUE(std::holds_alternative<msg::structure_batch>(again))
    << std::get<msg::error_reply>(again).message;
  EXPECT_EQ(std::get<msg::structure_batch>(again).structures[3].coords_nm,
            slice(model.decode(all_latents(sent)), 3, model.beads() * 3));
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(generator_actor_test, an_empty_batch_gets_an_empty_batch) {
  auto a = act::spawn_generator_actor(sys, config());
  msg::structure_batch empty;
  empty.request_id = 42;
  auto reply = generate(a, empty);
  ASSERT_TRUE(std::holds_alternative<msg::structure_batch>(reply))
    << std::get<msg::error_reply>(reply).message;
  EXPECT_EQ(std::get<msg::structure_batch>(reply), empty);
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(generator_actor_test, a_missing_model_file_fails_the_spawn_naming_the_path) {
  act::generator_actor_config c;
  c.model_path = std::filesystem::path(::testing::TempDir()) / "no_such_generator_model.ae";
  try {
    act::spawn_generator_actor(sys, c);
    FAIL() << "spawning with a missing model file succeeded";
  } catch (const ml::model_error& e) {
    EXPECT_NE(std::string(e.what()).find(c.model_path.string()), std::string::npos) << e.what();
    EXPECT_EQ(e.path(), c.model_path);
  }
}

} // namespace
