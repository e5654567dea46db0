// The validator actor against the real `gmx`: the demo protein's own coordinates come back
// valid with finite energies and minimised coordinates, a copy with two bonded beads at one
// place comes back invalid, both in one batch (ids and order kept); a wrong-size structure is
// rejected naming it, an empty batch is answered as is, and a missing topology fails the spawn
// naming the path.

#include "../support/actor_system.hpp"
#include "mummi/actors/validator_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mummi/coupling/gateway.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"

#include "../support/temp_dir.hpp"

namespace msg = mummi::messages;
namespace md = mummi::md;
namespace act = mummi::actors;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = MUMMI_SOURCE_DATA_DIR;
const fs::path protein_path = data_dir / "demo" / "protein.gro";

/// Every atom's position of `s`, x, y, z one after another.
std::vector<float> coords_of(const md::structure& s) {
  std::vector<float> out;
  for (const auto& a : s.atoms)
    out.insert(out.end(), a.position_nm.begin(), a.position_nm.end());
  return out;
}

class validator_actor_test : public ::testing::Test {
protected:
  void SetUp() override {
    protein = md::read_gro(protein_path);
    const auto spec = md::demo_system(data_dir / "demo");
    md::write_protein_topology(spec, tmp_ / "protein.top",
                               "validator actor test " + spec.protein_molecule);
    moltype = spec.protein_molecule;
  }

  act::validator_actor_config config() const {
    act::validator_actor_config c;
    c.validator.topology = tmp_ / "protein.top";
    c.validator.couple_moltype = moltype;
    c.validator.workers = 2;
    c.validator.structure_timeout = 40s;
    c.validator.work_root = tmp_ / "runs";
    c.structure_template = protein;
    return c;
  }

  msg::structure structure_with(std::uint64_t id, std::vector<float> coords) const {
    msg::structure s;
    s.id = id;
    s.latent = {0.5f, -0.25f};
    s.lambda = 0.5f;
    s.sampler = "ot";
    s.coords_nm = std::move(coords);
    return s;
  }

  /// The reply to a batch: a structure_batch or an error_reply.
  std::variant<msg::structure_batch, msg::error_reply> validate(const caf::actor& a,
                                                                msg::structure_batch batch) {
    return mummi::test::ask<msg::structure_batch>(sys, a, std::move(batch), 90s, "the batch");
  }

  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  mummi::test::temp_dir tmp_{mummi::test::keep_on_failure::yes};
  md::structure protein;
  std::string moltype;
};

TEST_F(validator_actor_test, accepts_the_demo_protein_and_rejects_two_beads_at_one_place) {
  const std::vector<float> own = coords_of(protein);
  // Two bonded linker beads (atoms 75 and 76, 0-based 74 and 75) at one place.
  std::vector<float> broken = own;
  for (std::size_t k = 0; k < 3; ++k)
    broken[3 * 75 + k] = broken[3 * 74 + k];
  msg::structure_batch sent;
  sent.request_id = 9;
  sent.structures.push_back(structure_with(31, own));
  sent.structures.push_back(structure_with(32, broken));

  auto a = act::spawn_validator_actor(sys, config());
  auto reply = validate(a, sent);
  ASSERT_TRUE(std::holds_alternative<msg::structure_batch>(reply))
    << std::get<msg::error_reply>(reply).message;
  const auto& got = std::get<msg::structure_batch>(reply);
  EXPECT_EQ(got.request_id, sent.request_id);
  ASSERT_EQ(got.structures.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got.structures[i].id, sent.structures[i].id);
    EXPECT_EQ(got.structures[i].latent, sent.structures[i].latent);
    EXPECT_EQ(got.structures[i].lambda, sent.structures[i].lambda);
    EXPECT_EQ(got.structures[i].sampler, sent.structures[i].sampler);
  }

  const auto& good = got.structures[0];
  EXPECT_TRUE(good.valid);
  EXPECT_TRUE(std::isfinite(good.epot_kj_mol)) << good.epot_kj_mol;
  EXPECT_TRUE(std::isfinite(good.fmax_kj_mol_nm)) << good.fmax_kj_mol_nm;
  EXPECT_LT(good.fmax_kj_mol_nm, 1e6);
  ASSERT_EQ(good.coords_nm.size(), own.size());
  // The minimised positions, in the input's atom order and frame: finite, and near the input
  // (a relaxed protein moves little).
  float largest_move_nm = 0;
  for (std::size_t k = 0; k < own.size(); ++k) {
    ASSERT_TRUE(std::isfinite(good.coords_nm[k])) << "coordinate " << k;
    largest_move_nm = std::max(largest_move_nm, std::abs(good.coords_nm[k] - own[k]));
  }
  EXPECT_LT(largest_move_nm, 0.3f);

  const auto& bad = got.structures[1];
  EXPECT_FALSE(bad.valid);
  EXPECT_EQ(bad.coords_nm, broken) << "a rejected structure keeps its coordinates";
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(validator_actor_test, a_wrong_size_structure_rejects_the_whole_batch) {
  std::vector<float> short_coords = coords_of(protein);
  short_coords.resize(short_coords.size() - 3);
  msg::structure_batch sent;
  sent.request_id = 4;
  sent.structures.push_back(structure_with(51, coords_of(protein)));
  sent.structures.push_back(structure_with(52, short_coords));
  auto a = act::spawn_validator_actor(sys, config());
  auto reply = validate(a, sent);
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(reply));
  const auto& r = std::get<msg::error_reply>(reply);
  EXPECT_EQ(r.code, msg::error_code::rejected);
  const std::size_t n = protein.atoms.size();
  EXPECT_NE(r.message.find("structure 52 has " + std::to_string(3 * n - 3) + " coordinates"),
            std::string::npos)
    << r.message;
  EXPECT_NE(r.message.find("the protein has " + std::to_string(n) + " atoms"), std::string::npos)
    << r.message;
  EXPECT_EQ(r.message.find("structure 51 "), std::string::npos) << r.message;
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(validator_actor_test, an_empty_batch_gets_an_empty_batch) {
  auto a = act::spawn_validator_actor(sys, config());
  msg::structure_batch empty;
  empty.request_id = 42;
  auto reply = validate(a, empty);
  ASSERT_TRUE(std::holds_alternative<msg::structure_batch>(reply))
    << std::get<msg::error_reply>(reply).message;
  EXPECT_EQ(std::get<msg::structure_batch>(reply), empty);
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(validator_actor_test, a_missing_topology_fails_the_spawn_naming_the_path) {
  auto c = config();
  c.validator.topology = tmp_ / "no_such_protein.top";
  try {
    act::spawn_validator_actor(sys, c);
    FAIL() << "spawning with a missing topology succeeded";
  } catch (const md::md_error& e) {
    EXPECT_NE(std::string(e.what()).find(c.validator.topology.string()), std::string::npos)
      << e.what();
  }
}

} // namespace
