#include "mummi/md_bridge/ndx.hpp"

#include "mummi/md_bridge/errors.hpp"
#include "text_file.hpp"

#include <algorithm>
#include <charconv>

namespace mummi::md {

namespace {

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

void check_group_name(const std::string& name) {
  if (detail::trim(name).empty() || name.find_first_of("[]\r\n") != std::string::npos)
    throw md_error("invalid index group name " + in_quotes(name));
}

} // namespace

const index_group* index_file::find(std::string_view name) const {
  for (const auto& g : groups)
    if (g.name == name)
      return &g;
  return nullptr;
}

index_group& index_file::add_group(std::string name, std::vector<std::int32_t> atoms) {
  check_group_name(name);
  if (find(name) != nullptr)
    throw md_error("index group " + in_quotes(name) + " already exists");
  for (const auto a : atoms)
    if (a < 1)
      throw md_error("index group " + in_quotes(name) + ": atom number " + std::to_string(a)
                     + " is below 1");
  groups.push_back({std::move(name), std::move(atoms)});
  return groups.back();
}

index_file parse_ndx(std::string_view text, const std::filesystem::path& name) {
  index_file f;
  detail::line_reader lines(text);
  while (const auto line = lines.next()) {
    const auto t = detail::trim(*line);
    if (t.empty())
      continue;
    if (t.front() == '[') {
      const auto close = t.find(']');
      if (close == std::string_view::npos)
        throw io_error(name, lines.number(), "malformed group header " + in_quotes(t) + ": no ']'");
      if (!detail::trim(t.substr(close + 1)).empty())
        throw io_error(name, lines.number(),
                       "unexpected text after the group header " + in_quotes(t));
      const auto group = detail::trim(t.substr(1, close - 1));
      if (group.empty())
        throw io_error(name, lines.number(), "empty group name");
      f.groups.push_back({std::string(group), {}});
      continue;
    }
    if (f.groups.empty())
      throw io_error(name, lines.number(), "atom numbers before any [ group ] header");
    auto& atoms = f.groups.back().atoms;
    for (const auto field : detail::split_fields(t)) {
      const auto v = detail::parse_integer<std::int32_t>(field);
      if (!v)
        throw io_error(name, lines.number(),
                       "group " + in_quotes(f.groups.back().name) + ": " + in_quotes(field)
                         + " is not an atom number");
      if (*v < 1)
        throw io_error(name, lines.number(),
                       "group " + in_quotes(f.groups.back().name) + ": atom number "
                         + std::to_string(*v) + " is below 1");
      atoms.push_back(*v);
    }
  }
  return f;
}

index_file read_ndx(const std::filesystem::path& path) {
  const auto text = detail::read_text_file(path);
  return parse_ndx(text, path);
}

std::string format_ndx(const index_file& f) {
  std::string out;
  for (const auto& g : f.groups) {
    check_group_name(g.name);
    out += "[ " + g.name + " ]\n";
    for (std::size_t i = 0; i < g.atoms.size(); ++i) {
      if (g.atoms[i] < 1)
        throw md_error("index group " + in_quotes(g.name) + ": atom number "
                       + std::to_string(g.atoms[i]) + " is below 1");
      char buffer[16];
      const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, g.atoms[i]);
      const auto len = static_cast<std::size_t>(end - buffer);
      if (i % 15 != 0)
        out += ' ';
      if (len < 4)
        out.append(4 - len, ' ');
      out.append(buffer, len);
      if (i % 15 == 14 || i + 1 == g.atoms.size())
        out += '\n';
    }
  }
  return out;
}

void write_ndx(const index_file& f, const std::filesystem::path& path) {
  detail::write_formatted(path, [&f] {
    return format_ndx(f);
  });
}

} // namespace mummi::md
