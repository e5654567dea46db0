#pragma once

// One filled-in example of every message body, for round-trip and fuzz tests and benchmarks.

#include <vector>

#include "mummi/messages/messages.hpp"

namespace mummi::test {

/// A structure of `beads` beads with deterministic, non-trivial values.
inline messages::structure sample_structure(std::uint64_t id, std::size_t beads = 763) {
  messages::structure s;
  s.id = id;
  for (int i = 0; i < 32; ++i)
    s.latent.push_back(0.01f * static_cast<float>(i) - 0.1f);
  s.lambda = 0.25f;
  s.sampler = "ot_feedback";
  s.coords_nm.reserve(beads * 3);
  for (std::size_t i = 0; i < beads * 3; ++i)
    s.coords_nm.push_back(0.001f * static_cast<float>(i % 997) + 0.5f);
  s.epot_kj_mol = -12345.5;
  s.fmax_kj_mol_nm = 987.25;
  s.valid = true;
  return s;
}

/// A batch of `n` structures of `beads` beads (10 x 763 beads is ~92 KB on the wire).
inline messages::structure_batch sample_batch(std::size_t n, std::size_t beads = 763) {
  messages::structure_batch b;
  b.request_id = 42;
  for (std::size_t i = 0; i < n; ++i)
    b.structures.push_back(sample_structure(1000 + i, beads));
  return b;
}

/// One example of every alternative of messages::body, in the variant's order.
inline std::vector<messages::body> sample_bodies() {
  using namespace messages;
  std::vector<body> v;
  v.emplace_back(node_hello{"node-0001", "nid001", 0x1234567890ull, 4242, 56, 8, "0.1.0"});
  v.emplace_back(node_welcome{"head", "demo", 1000, 77});
  v.emplace_back(node_bye{"node-0001", "allocation ends"});
  v.emplace_back(heartbeat{"node-0001", 99, 12, 1700000000123456789});
  v.emplace_back(structure_request{7, 16});
  v.emplace_back(sample_batch(2, 5));
  v.emplace_back(job_spec{11,
                          job_kind::simulation,
                          1001,
                          2,
                          31337,
                          6,
                          1,
                          600.0,
                          "sims/1001/in",
                          "sims/1001",
                          {{"nsteps", "-1"}, {"dt_ps", "0.02"}}});
  v.emplace_back(job_accepted{11, "node-0001"});
  v.emplace_back(job_progress{11, 12.5, 2096.7, 25});
  v.emplace_back(job_finished{11, job_status::failed, failure_reason::blew_up,
                              "LINCS warning turned fatal at step 1234", "sims/1001", 3.5});
  v.emplace_back(job_cancel{11, "node drained"});
  v.emplace_back(frame_features{11,
                                1001,
                                25,
                                12500.0,
                                {{"crd_membrane_distance_nm", {3.1}}, {"tilt_deg", {12.0, 4.0}}},
                                {0.5f, -0.25f, 1.0f}});
  v.emplace_back(feedback{feedback_kind::frame,
                          1001,
                          11,
                          true,
                          {0.1f, 0.2f},
                          0.75f,
                          {{"crd_membrane_distance_nm", {2.9}}}});
  v.emplace_back(control{control_command::swap_sampler, "importance", "", {{"k", "10"}}, "alice"});
  v.emplace_back(monitor_subscribe{{"jobs", "nodes"}, "monitor-alice"});
  v.emplace_back(
    monitor_event{5, 1700000000, "jobs", "job_finished", "job 11 failed", {{"job", "11"}}});
  v.emplace_back(
    monitor_snapshot{1700000000,
                     {{"node-0001", true, 56, 48, 8, 8}, {"node-0002", false, 56, 0, 8, 0}},
                     3,
                     16,
                     40,
                     2,
                     600,
                     "ot",
                     1109.4,
                     2096.7,
                     {"node-0002 lost"}});
  v.emplace_back(error_reply{error_code::unknown_target, "no actor named 'x'"});
  v.emplace_back(ack{"paused"});
  v.emplace_back(ping{9, {1, 2, 3, 0, 255}});
  return v;
}

} // namespace mummi::test
