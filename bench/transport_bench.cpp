// Cross-process request/response latency and throughput over tcp loopback: the mummi gateway
// (CAF actor -> gateway -> ZeroMQ -> gateway -> CAF actor and back) and, in the same run, a
// bare cppzmq echo pair (REQ -> ROUTER one at a time, DEALER -> ROUTER with several in
// flight; the floor: what ZeroMQ alone costs). The servers run
// as child processes of this program. bench/transport_bench.py adds RabbitMQ RPC side by side.
//
//   transport_bench [--small N] [--large N] [--oneway N] [--json FILE]

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "../tests/support/actor_system.hpp"
#include "../tests/support/request_pump.hpp"
#include "../tests/support/sample_messages.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/messages/codec.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct row {
  std::string transport, test;
  double p50_us = 0, p99_us = 0, per_s = 0;
  std::uint64_t count = 0, bytes = 0;
};

double pct(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

void wait_stdin_eof() {
  std::string line;
  while (std::getline(std::cin, line)) {
  }
}

// --- servers (child processes) ------------------------------------------------------------

using count_atom = caf::atom_constant<caf::atom("count")>;

caf::behavior sink_actor(caf::stateful_actor<std::uint64_t>* self) {
  return {
    [self](const msg::address&, const msg::ping&) {
      ++self->state;
    },
    [self](const msg::address&, const msg::structure_request&) {
      return msg::ack{std::to_string(self->state)};
    },
  };
}

/// Gateway settings of both benchmark processes; MUMMI_BUSY_POLL_US sets the busy-poll window.
cpl::gateway_config bench_config(std::string node, std::string bind) {
  cpl::gateway_config gc;
  gc.node_id = std::move(node);
  gc.bind = std::move(bind);
  if (const char* b = std::getenv("MUMMI_BUSY_POLL_US"))
    gc.busy_poll = std::chrono::microseconds{std::atoi(b)};
  return gc;
}

int serve_gateway() {
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  cpl::context ctx;
  cpl::gateway gw{sys, ctx, bench_config("server", "tcp://127.0.0.1:*")};
  auto echo = sys.spawn(mummi::test::echo_actor);
  auto sink = sys.spawn(sink_actor);
  caf::scoped_actor self{sys};
  self->send(gw.handle(), cpl::register_atom::value, std::string{"echo"}, echo);
  self->send(gw.handle(), cpl::register_atom::value, std::string{"sink"}, sink);
  std::cout << "endpoint " << gw.endpoint() << std::endl;
  wait_stdin_eof();
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  self->send_exit(sink, caf::exit_reason::user_shutdown);
  return 0;
}

int serve_zmq() {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  std::cout << "endpoint " << router.get(zmq::sockopt::last_endpoint) << std::endl;
  zmq::socket_t stop(ctx, zmq::socket_type::pair);
  std::thread watcher([&ctx] {
    wait_stdin_eof();
    zmq::socket_t s(ctx, zmq::socket_type::pair);
    s.connect("inproc://stop");
    s.send(zmq::str_buffer("x"), zmq::send_flags::none);
  });
  stop.bind("inproc://stop");
  zmq::pollitem_t items[]
    = {{router.handle(), 0, ZMQ_POLLIN, 0}, {stop.handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    zmq::poll(items, 2, std::chrono::milliseconds{-1});
    if (items[1].revents & ZMQ_POLLIN)
      break;
    // Echo every frame back (a REQ client adds an empty delimiter frame, a DEALER does not).
    for (bool more = true; more;) {
      zmq::message_t frame;
      (void)router.recv(frame);
      more = frame.more();
      router.send(frame, more ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  watcher.join();
  return 0;
}

// --- clients --------------------------------------------------------------------------------

cpl::child_process start_server(const std::string& mode, std::string& endpoint) {
  cpl::child_process p({std::filesystem::read_symlink("/proc/self/exe").string(), mode},
                       {.stdout_pipe = true, .stdin_pipe = true});
  auto line = p.read_line(30s);
  if (!line || line->rfind("endpoint ", 0) != 0)
    throw std::runtime_error("server " + mode + " did not start");
  endpoint = line->substr(9);
  return p;
}

row zmq_run(const std::string& endpoint, const std::string& test, std::size_t bytes,
            std::uint64_t n, unsigned window) {
  // One request at a time: REQ -> ROUTER, as MuMMI-style RPC would be written with bare
  // ZeroMQ; several in flight: DEALER -> ROUTER.
  zmq::context_t ctx;
  zmq::socket_t s(ctx, window == 1 ? zmq::socket_type::req : zmq::socket_type::dealer);
  s.connect(endpoint);
  std::vector<std::byte> payload(bytes, std::byte{7});
  auto send_one = [&] {
    s.send(zmq::buffer(payload), zmq::send_flags::none);
  };
  // warm up
  for (int i = 0; i < 100; ++i) {
    send_one();
    zmq::message_t m;
    (void)s.recv(m);
  }
  std::vector<double> rtt;
  std::vector<clock_type::time_point> sent_at;
  sent_at.reserve(n);
  auto t0 = clock_type::now();
  std::uint64_t sent = 0, got = 0;
  while (sent < std::min<std::uint64_t>(window, n)) {
    sent_at.push_back(clock_type::now());
    send_one();
    ++sent;
  }
  while (got < n) {
    zmq::message_t m;
    (void)s.recv(m);
    if (window == 1)
      rtt.push_back(
        std::chrono::duration<double, std::micro>(clock_type::now() - sent_at[got]).count());
    ++got;
    if (sent < n) {
      sent_at.push_back(clock_type::now());
      send_one();
      ++sent;
    }
  }
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  return {"bare cppzmq", test, pct(rtt, 0.5), pct(rtt, 0.99), static_cast<double>(n) / secs, n,
          bytes};
}

template<class T>
row gateway_run(caf::actor_system& sys, const cpl::gateway& gw, const std::string& test, T sample,
                std::function<void(T&, std::uint64_t)> set_seq,
                std::function<std::uint64_t(const T&)> seq_of, std::uint64_t n, unsigned window) {
  auto make = [sample, set_seq](std::uint64_t seq) {
    T x = sample;
    set_seq(x, seq);
    return x;
  };
  auto run = [&](std::uint64_t count, unsigned w, bool rtt) {
    auto p = sys.spawn(mummi::test::request_pump<T>, gw.handle(), msg::address{"server", "echo"},
                       count, w, std::function<T(std::uint64_t)>(make), seq_of, rtt);
    mummi::test::pump_result r;
    caf::scoped_actor self{sys};
    self->request(p, 600s, mummi::test::pump_start_atom::value)
      .receive(
        [&](mummi::test::pump_result& x) {
          r = std::move(x);
        },
        [&](caf::error& e) {
          r.first_error = sys.render(e);
        });
    self->send_exit(p, caf::exit_reason::user_shutdown);
    if (r.ok != count)
      throw std::runtime_error(test + ": " + std::to_string(r.ok) + " of " + std::to_string(count)
                               + " ok; " + r.first_error);
    return r;
  };
  run(100, 1, false); // warm up
  auto r = run(n, window, window == 1);
  msg::envelope e;
  e.payload = make(0);
  return {"mummi gateway",
          test,
          pct(r.rtt_us, 0.5),
          pct(r.rtt_us, 0.99),
          static_cast<double>(n) / r.seconds,
          n,
          msg::encode(e).size()};
}

row gateway_oneway(caf::actor_system& sys, const cpl::gateway& gw, std::uint64_t n) {
  caf::scoped_actor self{sys};
  msg::address sink{"server", "sink"};
  msg::ping p{0, std::vector<std::uint8_t>(64, 1)};
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i)
    self->send(gw.handle(), cpl::send_atom::value, sink, p);
  std::string count;
  self->request(gw.handle(), 600s, cpl::request_atom::value, sink, msg::structure_request{1, 0})
    .receive(
      [&](msg::ack& a) {
        count = a.text;
      },
      [&](caf::error& e) {
        count = sys.render(e);
      });
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  auto received = std::stoull(count);
  if (received != n)
    std::fprintf(stderr, "one-way: %llu of %llu arrived\n",
                 static_cast<unsigned long long>(received), static_cast<unsigned long long>(n));
  return {"mummi gateway", "one-way 64 B", 0, 0, static_cast<double>(received) / secs, received, 0};
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mummi transport benchmark"};
  bool serve_gw = false, serve_z = false;
  std::uint64_t small_n = 5000, large_n = 1000, oneway_n = 200000;
  std::string json_file;
  app.add_flag("--serve-gateway", serve_gw);
  app.add_flag("--serve-zmq", serve_z);
  app.add_option("--small", small_n, "requests with a 64 B payload");
  app.add_option("--large", large_n, "requests with a 10-structure batch (~92 KB)");
  app.add_option("--oneway", oneway_n, "one-way messages");
  app.add_option("--json", json_file, "also write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  cpl::tune_allocator();
  if (serve_gw)
    return serve_gateway();
  if (serve_z)
    return serve_zmq();

  std::vector<row> rows;
  auto batch = mummi::test::sample_batch(10);
  msg::envelope be;
  be.payload = batch;
  auto large_bytes = msg::encode(be).size();
  {
    std::string ep;
    auto server = start_server("--serve-zmq", ep);
    rows.push_back(zmq_run(ep, "latency 64 B", 64, small_n, 1));
    rows.push_back(zmq_run(ep, "latency 92 KB", large_bytes, large_n, 1));
    rows.push_back(zmq_run(ep, "16 in flight 64 B", 64, small_n * 4, 16));
    rows.push_back(zmq_run(ep, "16 in flight 92 KB", large_bytes, large_n, 16));
  }
  {
    std::string ep;
    auto server = start_server("--serve-gateway", ep);
    mummi::coupling::system_config cfg;
    caf::actor_system sys{cfg};
    cpl::context ctx;
    cpl::gateway gw{sys, ctx, bench_config("client", "")};
    caf::scoped_actor self{sys};
    self->send(gw.handle(), cpl::connect_atom::value, std::string{"server"}, ep);
    self->send(gw.handle(), cpl::watch_atom::value, std::string{"server"});
    self->receive([](const cpl::peer_up&) {},
                  caf::after(30s) >>
                    [] {
                      throw std::runtime_error("gateway server unreachable");
                    });
    std::function<void(msg::ping&, std::uint64_t)> ping_seq = [](msg::ping& p, std::uint64_t s) {
      p.seq = s;
    };
    std::function<std::uint64_t(const msg::ping&)> ping_of = [](const msg::ping& p) {
      return p.seq;
    };
    std::function<void(msg::structure_batch&, std::uint64_t)> batch_seq
      = [](msg::structure_batch& b, std::uint64_t s) {
          b.request_id = s;
        };
    std::function<std::uint64_t(const msg::structure_batch&)> batch_of
      = [](const msg::structure_batch& b) {
          return b.request_id;
        };
    msg::ping small{0, std::vector<std::uint8_t>(64, 1)};
    rows.push_back(gateway_run(sys, gw, "latency 64 B", small, ping_seq, ping_of, small_n, 1));
    rows.push_back(gateway_run(sys, gw, "latency 92 KB", batch, batch_seq, batch_of, large_n, 1));
    rows.push_back(
      gateway_run(sys, gw, "16 in flight 64 B", small, ping_seq, ping_of, small_n * 4, 16));
    rows.push_back(
      gateway_run(sys, gw, "16 in flight 92 KB", batch, batch_seq, batch_of, large_n, 16));
    rows.push_back(gateway_oneway(sys, gw, oneway_n));
  }

  std::printf("%-14s %-20s %10s %10s %12s %8s %8s\n", "transport", "test", "p50 us", "p99 us",
              "per s", "count", "bytes");
  for (const auto& r : rows)
    std::printf("%-14s %-20s %10.0f %10.0f %12.0f %8llu %8llu\n", r.transport.c_str(),
                r.test.c_str(), r.p50_us, r.p99_us, r.per_s,
                static_cast<unsigned long long>(r.count), static_cast<unsigned long long>(r.bytes));
  if (!json_file.empty()) {
    std::ofstream out{json_file};
    out << "[\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      out << "  {\"transport\": \"" << r.transport << "\", \"test\": \"" << r.test
          << "\", \"p50_us\": " << r.p50_us << ", \"p99_us\": " << r.p99_us
          << ", \"per_s\": " << r.per_s << ", \"count\": " << r.count << ", \"bytes\": " << r.bytes
          << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    out << "]\n";
  }
  return 0;
}
