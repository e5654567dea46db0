#pragma once

/// The one project-wide list of message types known to the CAF actor system.

#include <caf/actor_system_config.hpp>

#include "mummi/messages/messages.hpp"

namespace mummi::messages {

/// Registers every body type (and the types they contain) with `cfg`. Call once from `main`
/// (or a test fixture) before the actor system is created.
void add_message_types(caf::actor_system_config& cfg);

} // namespace mummi::messages
