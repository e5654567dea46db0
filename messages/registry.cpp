#include "mummi/messages/registry.hpp"

#include <caf/all.hpp>

namespace mummi::messages {

namespace {

template<class T>
void add(caf::actor_system_config& cfg, const char* name) {
  cfg.add_message_type<T>(std::string{"mummi."} + name);
}

template<class... Ts>
void add_all(caf::actor_system_config& cfg, std::variant<Ts...>*) {
  (add<Ts>(cfg, type_name(body{Ts{}})), ...);
}

} // namespace

void add_message_types(caf::actor_system_config& cfg) {
  add_all(cfg, static_cast<body*>(nullptr));
  add<key_value>(cfg, "key_value");
  add<std::vector<key_value>>(cfg, "key_value_list");
  add<structure>(cfg, "structure");
  add<feature>(cfg, "feature");
  add<node_status>(cfg, "node_status");
  add<address>(cfg, "address");
}

} // namespace mummi::messages
