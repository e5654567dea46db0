#pragma once

// An actor that sends `count` requests through a gateway with `window` of them in flight and
// checks that every reply is the one its request asked for. Used by the cross-process tests
// and the transport benchmark.

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mummi/coupling/gateway.hpp"

namespace mummi::test {

struct pump_result {
  std::uint64_t ok = 0;
  std::uint64_t mismatched = 0; ///< a reply that did not belong to its request
  std::uint64_t failed = 0;     ///< an error instead of a reply
  std::string first_error;
  std::vector<double> rtt_us; ///< one round-trip time per request, when recorded
  double seconds = 0;
};

using pump_start_atom = caf::atom_constant<caf::atom("pump_go")>;

template<class T>
struct pump_state {
  caf::actor gateway;
  messages::address to;
  std::uint64_t count = 0;
  std::function<T(std::uint64_t)> make;
  std::function<std::uint64_t(const T&)> seq_of;
  bool record_rtt = false;
  caf::response_promise done;
  std::uint64_t sent = 0;
  std::uint64_t answered = 0;
  pump_result result;
  std::chrono::steady_clock::time_point t0;
};

template<class T>
void pump_answered(caf::stateful_actor<pump_state<T>>* self);

/// Sends the next request.
template<class T>
void pump_issue(caf::stateful_actor<pump_state<T>>* self) {
  auto& st = self->state;
  auto seq = st.sent++;
  auto t = std::chrono::steady_clock::now();
  self
    ->request(st.gateway, std::chrono::seconds{30}, coupling::request_atom::value, st.to,
              st.make(seq))
    .then(
      [self, seq, t](T& reply) {
        auto& s = self->state;
        if (s.seq_of(reply) == seq)
          ++s.result.ok;
        else
          ++s.result.mismatched;
        if (s.record_rtt)
          s.result.rtt_us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t)
              .count());
        pump_answered(self);
      },
      [self](caf::error& e) {
        auto& s = self->state;
        if (s.result.failed++ == 0)
          s.result.first_error = self->system().render(e);
        pump_answered(self);
      });
}

template<class T>
void pump_answered(caf::stateful_actor<pump_state<T>>* self) {
  auto& s = self->state;
  if (++s.answered == s.count) {
    s.result.seconds
      = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
    s.done.deliver(s.result);
  } else if (s.sent < s.count) {
    pump_issue(self);
  }
}

/// `make(seq)` builds request number `seq`; `seq_of(reply)` reads it back from the echo.
template<class T>
caf::behavior request_pump(caf::stateful_actor<pump_state<T>>* self, caf::actor gateway,
                           messages::address to, std::uint64_t count, unsigned window,
                           std::function<T(std::uint64_t)> make,
                           std::function<std::uint64_t(const T&)> seq_of, bool record_rtt) {
  auto& st = self->state;
  st.gateway = std::move(gateway);
  st.to = std::move(to);
  st.count = count;
  st.make = std::move(make);
  st.seq_of = std::move(seq_of);
  st.record_rtt = record_rtt;
  return {
    [self, window](pump_start_atom) {
      auto& s = self->state;
      s.done = self->make_response_promise();
      s.t0 = std::chrono::steady_clock::now();
      if (s.count == 0)
        s.done.deliver(s.result);
      for (unsigned i = 0; i < window && s.sent < s.count; ++i)
        pump_issue(self);
      return s.done;
    },
  };
}

} // namespace mummi::test

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mummi::test::pump_result)
