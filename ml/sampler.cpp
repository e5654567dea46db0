// The sampler registry and the helpers every sampler shares: parameter parsing that reports
// every problem at once, checkpoint text, and library-independent random draws.

#include "mummi/ml/sampler.hpp"

#include <bit>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <sstream>
#include <utility>

#include "samplers.hpp"

namespace mummi::ml {

// --- Registry -------------------------------------------------------------------------------

void sampler_registry::add(std::string name, sampler_factory factory) {
  factories_.insert_or_assign(std::move(name), std::move(factory));
}

std::unique_ptr<sampler> sampler_registry::create(std::string_view name,
                                                  const state_ensembles& states,
                                                  const sampler_params& params,
                                                  std::uint64_t seed) const {
  const auto it = factories_.find(name);
  if (it == factories_.end()) {
    std::string known;
    for (const auto& [key, factory] : factories_)
      known += (known.empty() ? "" : ", ") + key;
    throw sampler_error("unknown sampler '" + std::string(name)
                        + "' (known: " + (known.empty() ? "none" : known) + ")");
  }
  return it->second(states, params, seed);
}

std::vector<std::string> sampler_registry::names() const {
  std::vector<std::string> out;
  for (const auto& [key, factory] : factories_)
    out.push_back(key);
  return out;
}

// --- Parameters -----------------------------------------------------------------------------

namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

} // namespace

param_reader::param_reader(std::string_view sampler, const sampler_params& params)
  : sampler_(sampler), params_(params) {}

bool param_reader::has(std::string_view key) const {
  return params_.find(std::string(key)) != params_.end();
}

const std::string* param_reader::find(std::string_view key) {
  known_.emplace(key);
  const auto it = params_.find(std::string(key));
  return it == params_.end() ? nullptr : &it->second;
}

double param_reader::real(std::string_view key, double fallback, double min, double max) {
  const std::string* text = find(key);
  if (text == nullptr)
    return fallback;
  double v = 0;
  const char* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, v);
  if (ec != std::errc{} || ptr != end || !std::isfinite(v)) {
    problem("parameter '" + std::string(key) + "' = '" + *text + "' is not a finite number");
    return fallback;
  }
  if (v < min || v > max) {
    problem("parameter '" + std::string(key) + "' = " + *text + " is outside [" + number_text(min)
            + ", " + number_text(max) + "]");
    return fallback;
  }
  return v;
}

std::int64_t param_reader::integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                                   std::int64_t max) {
  const std::string* text = find(key);
  if (text == nullptr)
    return fallback;
  std::int64_t v = 0;
  const char* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, v);
  if (ec != std::errc{} || ptr != end) {
    problem("parameter '" + std::string(key) + "' = '" + *text + "' is not an integer");
    return fallback;
  }
  if (v < min || v > max) {
    problem("parameter '" + std::string(key) + "' = " + *text + " is outside ["
            + std::to_string(min) + ", " + std::to_string(max) + "]");
    return fallback;
  }
  return v;
}

bool param_reader::boolean(std::string_view key, bool fallback) {
  const std::string* text = find(key);
  if (text == nullptr)
    return fallback;
  if (*text == "true" || *text == "1" || *text == "yes" || *text == "on")
    return true;
  if (*text == "false" || *text == "0" || *text == "no" || *text == "off")
    return false;
  problem("parameter '" + std::string(key) + "' = '" + *text
          + "' is not a boolean (true/false, 1/0, yes/no, on/off)");
  return fallback;
}

void param_reader::problem(std::string message) {
  problems_.push_back(std::move(message));
}

void param_reader::check_ensembles(const state_ensembles& states) {
  const auto check = [this](const latent_points& p, const char* which) {
    if (p.dims == 0) {
      problem(std::string("ensemble ") + which + " has 0 dims");
      return false;
    }
    if (p.values.size() % p.dims != 0)
      problem(std::string("ensemble ") + which + " holds " + std::to_string(p.values.size())
              + " values, not a multiple of its " + std::to_string(p.dims) + " dims");
    else if (p.size() == 0)
      problem(std::string("ensemble ") + which + " is empty");
    for (std::size_t k = 0; k < p.values.size(); ++k)
      if (!std::isfinite(p.values[k])) {
        problem(std::string("ensemble ") + which + " point " + std::to_string(k / p.dims) + " dim "
                + std::to_string(k % p.dims) + " is not finite");
        break;
      }
    return true;
  };
  const bool a_ok = check(states.a, "A");
  const bool b_ok = check(states.b, "B");
  if (a_ok && b_ok && states.a.dims != states.b.dims)
    problem("ensemble A has " + std::to_string(states.a.dims) + " dims but ensemble B has "
            + std::to_string(states.b.dims));
}

void param_reader::finish() const {
  std::vector<std::string> all = problems_;
  for (const auto& [key, value] : params_)
    if (known_.find(key) == known_.end()) {
      std::string known;
      for (const auto& k : known_)
        known += (known.empty() ? "" : ", ") + k;
      all.push_back("unknown parameter '" + key + "' (known: " + (known.empty() ? "none" : known)
                    + ")");
    }
  if (all.empty())
    return;
  std::string message = "sampler '" + sampler_ + "': ";
  for (std::size_t i = 0; i < all.size(); ++i)
    message += (i == 0 ? "" : "; ") + all[i];
  throw sampler_error(message);
}

// --- Checkpoints ----------------------------------------------------------------------------

namespace {

constexpr std::string_view checkpoint_magic = "mummi-sampler";

std::string hex_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

} // namespace

checkpoint_writer::checkpoint_writer(std::string_view sampler, int version) {
  out_ = std::string(checkpoint_magic) + " " + std::string(sampler) + " " + std::to_string(version)
    + "\n";
}

void checkpoint_writer::u64(std::string_view key, std::uint64_t value) {
  out_ += std::string(key) + " " + std::to_string(value) + "\n";
}

void checkpoint_writer::f64(std::string_view key, double value) {
  out_ += std::string(key) + " " + hex_double(value) + "\n";
}

void checkpoint_writer::u64s(std::string_view key, const std::vector<std::uint64_t>& values) {
  out_ += std::string(key) + " " + std::to_string(values.size());
  for (const std::uint64_t v : values)
    out_ += " " + std::to_string(v);
  out_ += "\n";
}

void checkpoint_writer::floats(std::string_view key, const std::vector<float>& values) {
  out_ += std::string(key) + " " + std::to_string(values.size());
  char buf[16];
  for (const float v : values) {
    std::snprintf(buf, sizeof buf, " %08" PRIx32, std::bit_cast<std::uint32_t>(v));
    out_ += buf;
  }
  out_ += "\n";
}

void checkpoint_writer::rng(std::string_view key, const std::mt19937_64& engine) {
  std::ostringstream s;
  s << engine;
  out_ += std::string(key) + " " + s.str() + "\n";
}

std::string checkpoint_writer::finish() && {
  return std::move(out_);
}

checkpoint_reader::checkpoint_reader(std::string_view sampler, int version, std::string_view bytes)
  : sampler_(sampler), rest_(bytes) {
  const std::string expected = std::string(checkpoint_magic) + " " + sampler_ + " ";
  const auto eol = rest_.find('\n');
  const std::string_view first = rest_.substr(0, eol);
  line_ = 1;
  if (first.substr(0, expected.size()) != expected) {
    std::string shown(first.substr(0, 40));
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        c = '?';
    fail("not a checkpoint of this sampler (starts '" + shown + "', expected '" + expected
         + "<version>')");
  }
  if (first.substr(expected.size()) != std::to_string(version))
    fail("checkpoint version '" + std::string(first.substr(expected.size()))
         + "' is not the supported " + std::to_string(version));
  rest_ = eol == std::string_view::npos ? std::string_view{} : rest_.substr(eol + 1);
}

void checkpoint_reader::fail(std::string_view problem) const {
  throw sampler_error("sampler '" + sampler_ + "': restore: line " + std::to_string(line_) + ": "
                      + std::string(problem));
}

std::string_view checkpoint_reader::value_of(std::string_view key) {
  ++line_;
  const auto eol = rest_.find('\n');
  if (eol == std::string_view::npos)
    fail("expected '" + std::string(key) + "', found "
         + (rest_.empty() ? "the end" : "an unterminated line"));
  const std::string_view line = rest_.substr(0, eol);
  rest_ = rest_.substr(eol + 1);
  if (line.substr(0, key.size()) != key || line.size() <= key.size() || line[key.size()] != ' ')
    fail("expected '" + std::string(key) + " ...'");
  return line.substr(key.size() + 1);
}

namespace {

bool parse_u64(std::string_view& text, std::uint64_t& v, int base = 10) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc{} || ptr == text.data())
    return false;
  text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
  return text.empty() || text.front() == ' ';
}

} // namespace

std::uint64_t checkpoint_reader::u64(std::string_view key) {
  std::string_view text = value_of(key);
  std::uint64_t v = 0;
  if (!parse_u64(text, v) || !text.empty())
    fail("'" + std::string(key) + "' is not an unsigned integer");
  return v;
}

double checkpoint_reader::f64(std::string_view key) {
  const std::string text(value_of(key));
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
    fail("'" + std::string(key) + "' is not a finite number");
  return v;
}

std::vector<std::uint64_t> checkpoint_reader::u64s(std::string_view key) {
  std::string_view text = value_of(key);
  std::uint64_t n = 0;
  if (!parse_u64(text, n) || n > text.size())
    fail("'" + std::string(key) + "' has no valid count");
  std::vector<std::uint64_t> out(n);
  for (auto& v : out)
    if (!parse_u64(text, v))
      fail("'" + std::string(key) + "' holds fewer than " + std::to_string(n) + " integers");
  if (!text.empty())
    fail("'" + std::string(key) + "' holds more than " + std::to_string(n) + " integers");
  return out;
}

std::vector<float> checkpoint_reader::floats(std::string_view key) {
  std::string_view text = value_of(key);
  std::uint64_t n = 0;
  if (!parse_u64(text, n) || n > text.size())
    fail("'" + std::string(key) + "' has no valid count");
  std::vector<float> out(n);
  for (auto& v : out) {
    std::uint64_t bits = 0;
    if (!parse_u64(text, bits, 16) || bits > 0xffffffffu)
      fail("'" + std::string(key) + "' holds fewer than " + std::to_string(n) + " floats");
    v = std::bit_cast<float>(static_cast<std::uint32_t>(bits));
  }
  if (!text.empty())
    fail("'" + std::string(key) + "' holds more than " + std::to_string(n) + " floats");
  return out;
}

void checkpoint_reader::rng(std::string_view key, std::mt19937_64& engine) {
  std::istringstream s{std::string(value_of(key))};
  std::mt19937_64 restored;
  s >> restored;
  if (s.fail())
    fail("'" + std::string(key) + "' is not a random engine state");
  s >> std::ws;
  if (!s.eof())
    fail("'" + std::string(key) + "' has trailing text");
  engine = restored;
}

void checkpoint_reader::finish() const {
  if (!rest_.empty())
    throw sampler_error("sampler '" + sampler_ + "': restore: trailing bytes after line "
                        + std::to_string(line_));
}

// --- Random draws ---------------------------------------------------------------------------

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

std::size_t uniform_index(std::mt19937_64& rng, std::size_t n) {
  const std::uint64_t range = n;
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % range; // reject the biased tail
  std::uint64_t x = 0;
  do
    x = rng();
  while (x >= limit);
  return static_cast<std::size_t>(x % range);
}

double normal01(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng); // (0, 1]
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

} // namespace mummi::ml
