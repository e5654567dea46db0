#pragma once

/// The head's register of node agents: answers each agent's hello with a welcome, watches the
/// nodes through the gateway and knows which are alive. Registered with the gateway as
/// "registry".
///
/// Messages: (address, node_hello) -> node_welcome; (nodes_atom) -> std::vector<node_status>;
/// (await_nodes_atom, n) -> the same vector once at least n nodes are alive;
/// (watch_nodes_atom) -> no reply: the sender is sent every node's node_status now and again
/// whenever a node joins, rejoins or is lost.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace mummi::actors {

using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
using await_nodes_atom = caf::atom_constant<caf::atom("await_nod")>;
using watch_nodes_atom = caf::atom_constant<caf::atom("watch_nod")>;

struct node_registry_config {
  std::string head_id = "head";
  std::string campaign;
  std::chrono::milliseconds heartbeat_period{1000};
};

caf::actor spawn_node_registry(caf::actor_system& sys, caf::actor gateway, node_registry_config cfg,
                               std::shared_ptr<spdlog::logger> log);

} // namespace mummi::actors
