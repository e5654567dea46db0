// A separate OS process with its own actor system and gateway, driven by the cross-process
// tests. It prints what it does, one line at a time, and exits when its stdin closes.
//
//   coupling_peer --node ID [--bind EP] [--connect NODE=EP] [--heartbeat-ms N]
//                 [--requests N --to NODE] [--window W]

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "../support/actor_system.hpp"
#include "../support/request_pump.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  CLI::App app{"coupling test peer"};
  std::string node, bind, connect, to;
  unsigned heartbeat_ms = 100, window = 16;
  std::uint64_t requests = 0;
  app.add_option("--node", node)->required();
  app.add_option("--bind", bind);
  app.add_option("--connect", connect);
  app.add_option("--heartbeat-ms", heartbeat_ms);
  app.add_option("--requests", requests);
  app.add_option("--to", to);
  app.add_option("--window", window);
  CLI11_PARSE(app, argc, argv);

  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  cpl::context ctx;
  cpl::gateway_config gc;
  gc.node_id = node;
  gc.bind = bind;
  gc.heartbeat_period = std::chrono::milliseconds{heartbeat_ms};
  cpl::gateway gw{sys, ctx, gc};
  auto echo = sys.spawn(mummi::test::echo_actor);
  caf::scoped_actor self{sys};
  // "echo" must be reachable before anyone learns where to find it.
  self->request(gw.handle(), 10s, cpl::register_atom::value, std::string{"echo"}, echo)
    .receive([] {},
             [&](caf::error& e) {
               std::cout << "register failed " << sys.render(e) << std::endl;
             });
  std::cout << "endpoint " << (gw.endpoint().empty() ? "none" : gw.endpoint()) << std::endl;
  if (auto eq = connect.find('='); eq != std::string::npos) {
    auto peer = connect.substr(0, eq);
    self->send(gw.handle(), cpl::connect_atom::value, peer, connect.substr(eq + 1));
    self->send(gw.handle(), cpl::watch_atom::value, peer);
    self->receive(
      [&](const cpl::peer_up& u) {
        std::cout << "up " << u.node << std::endl;
      },
      caf::after(10s) >>
        [&] {
          std::cout << "no contact with " << peer << std::endl;
        });
  }
  if (requests > 0) {
    auto pump
      = sys.spawn(mummi::test::request_pump<msg::ping>, gw.handle(), msg::address{to, "echo"},
                  requests, window, std::function<msg::ping(std::uint64_t)>([](std::uint64_t seq) {
                    return msg::ping{seq, std::vector<std::uint8_t>(64, 7)};
                  }),
                  std::function<std::uint64_t(const msg::ping&)>([](const msg::ping& p) {
                    return p.seq;
                  }),
                  false);
    self->request(pump, 120s, mummi::test::pump_start_atom::value)
      .receive(
        [&](const mummi::test::pump_result& r) {
          if (r.ok == requests)
            std::cout << "requests ok " << r.ok << std::endl;
          else
            std::cout << "requests failed ok=" << r.ok << " mismatched=" << r.mismatched
                      << " failed=" << r.failed << " " << r.first_error << std::endl;
        },
        [&](caf::error& e) {
          std::cout << "requests failed " << caf::to_string(e) << std::endl;
        });
    self->send_exit(pump, caf::exit_reason::user_shutdown);
  }
  std::cout << "serving" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  return 0;
}
