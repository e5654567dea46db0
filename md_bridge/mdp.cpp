#include "mummi/md_bridge/mdp.hpp"

#include "mummi/md_bridge/errors.hpp"
#include "text_file.hpp"

#include <algorithm>

namespace mummi::md {

namespace {

using detail::trim;

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

} // namespace

bool mdp_keys_equal(std::string_view a, std::string_view b) noexcept {
  return detail::gromacs_names_equal(a, b);
}

std::optional<std::string> mdp::get(std::string_view key) const {
  for (const auto& e : entries_)
    if (!e.key.empty() && mdp_keys_equal(e.key, key))
      return e.value;
  return std::nullopt;
}

void mdp::set(std::string_view key, std::string_view value) {
  key = trim(key);
  value = trim(value);
  if (key.empty() || key.find_first_of("=;\r\n") != std::string_view::npos
      || std::any_of(key.begin(), key.end(), detail::is_space))
    throw md_error("invalid mdp key " + in_quotes(key));
  if (value.find_first_of(";\r\n") != std::string_view::npos)
    throw md_error("invalid value " + in_quotes(value) + " for mdp key " + in_quotes(key));
  for (auto& e : entries_)
    if (!e.key.empty() && mdp_keys_equal(e.key, key)) {
      e.key = std::string(key);
      e.value = std::string(value);
      return;
    }
  entries_.push_back({std::string(key), std::string(value), {}});
}

bool mdp::erase(std::string_view key) {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const mdp_entry& e) {
    return !e.key.empty() && mdp_keys_equal(e.key, key);
  });
  if (it == entries_.end())
    return false;
  entries_.erase(it);
  return true;
}

void mdp::add_comment(std::string_view text) {
  if (text.find_first_of("\r\n") != std::string_view::npos)
    throw md_error("mdp comment " + in_quotes(text) + " holds a line break");
  entries_.push_back({{}, {}, text.empty() ? std::string() : "; " + std::string(text)});
}

mdp parse_mdp(std::string_view text, const std::filesystem::path& name) {
  mdp m;
  std::vector<std::size_t> key_lines;
  detail::line_reader lines(text);
  while (const auto line = lines.next()) {
    mdp_entry e;
    auto data = *line;
    if (const auto pos = data.find(';'); pos != std::string_view::npos) {
      e.comment = std::string(trim(data.substr(pos)));
      data = data.substr(0, pos);
    }
    data = trim(data);
    if (data.empty()) {
      m.entries_.push_back(std::move(e));
      key_lines.push_back(0);
      continue;
    }
    const auto eq = data.find('=');
    if (eq == std::string_view::npos)
      throw io_error(name, lines.number(), "line has no '=': " + in_quotes(data));
    const auto key = trim(data.substr(0, eq));
    if (key.empty())
      throw io_error(name, lines.number(), "empty key before '='");
    if (std::any_of(key.begin(), key.end(), detail::is_space))
      throw io_error(name, lines.number(), "key " + in_quotes(key) + " holds a blank");
    for (std::size_t i = 0; i < m.entries_.size(); ++i)
      if (!m.entries_[i].key.empty() && mdp_keys_equal(m.entries_[i].key, key))
        throw io_error(name, lines.number(),
                       "key " + in_quotes(key) + " is already set on line "
                         + std::to_string(key_lines[i]));
    e.key = std::string(key);
    e.value = std::string(trim(data.substr(eq + 1)));
    m.entries_.push_back(std::move(e));
    key_lines.push_back(lines.number());
  }
  return m;
}

mdp read_mdp(const std::filesystem::path& path) {
  const auto text = detail::read_text_file(path);
  return parse_mdp(text, path);
}

std::string format_mdp(const mdp& m) {
  std::size_t width = 0;
  for (const auto& e : m.entries())
    width = std::max(width, e.key.size());
  width = std::min<std::size_t>(width, 24);
  std::string out;
  for (const auto& e : m.entries()) {
    if (!e.key.empty()) {
      out += e.key;
      if (e.key.size() < width)
        out.append(width - e.key.size(), ' ');
      out += " = ";
      out += e.value;
      if (!e.comment.empty())
        out += ' ';
    }
    out += e.comment;
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out += '\n';
  }
  return out;
}

void write_mdp(const mdp& m, const std::filesystem::path& path) {
  detail::write_formatted(path, [&m] {
    return format_mdp(m);
  });
}

} // namespace mummi::md
