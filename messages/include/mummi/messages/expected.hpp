#pragma once

/// A value or an error, for results where failure is normal (decoding bytes from the wire,
/// parsing user input). C++20 has no std::expected; this is the small subset mummi needs.

#include <cassert>
#include <utility>
#include <variant>

namespace mummi {

template<class E>
struct unexpected {
  E error;
};
template<class E>
unexpected(E) -> unexpected<E>;

template<class T, class E>
class [[nodiscard]] expected {
public:
  expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  expected(unexpected<E> err) : v_(std::in_place_index<1>, std::move(err.error)) {}

  bool has_value() const noexcept {
    return v_.index() == 0;
  }
  explicit operator bool() const noexcept {
    return has_value();
  }
  T& operator*() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& operator*() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& operator*() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T* operator->() {
    return &**this;
  }
  const T* operator->() const {
    return &**this;
  }
  const E& error() const& {
    assert(!has_value());
    return std::get<1>(v_);
  }

private:
  std::variant<T, E> v_;
};

} // namespace mummi
