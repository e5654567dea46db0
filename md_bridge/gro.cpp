#include "mummi/md_bridge/gro.hpp"

#include "mummi/md_bridge/errors.hpp"
#include "text_file.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace mummi::md {

namespace {

using detail::parse_integer;
using detail::parse_real;
using detail::trim;

constexpr std::size_t coordinates_column = 20; ///< 0-based column where x starts
constexpr char axis_names[3] = {'x', 'y', 'z'};

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

/// Field width deduced from the spacing of the decimal points of x, y and z, as GROMACS does.
std::size_t field_width(std::string_view line, const std::filesystem::path& name,
                        std::size_t line_number) {
  const auto p1 = line.find('.', coordinates_column);
  const auto p2 = p1 == std::string_view::npos ? p1 : line.find('.', p1 + 1);
  const auto p3 = p2 == std::string_view::npos ? p2 : line.find('.', p2 + 1);
  if (p3 == std::string_view::npos)
    throw io_error(name, line_number,
                   "short line: expected x, y and z with decimal points from column 21");
  const auto width = p2 - p1;
  if (p3 - p2 != width || width < 2)
    throw io_error(
      name, line_number,
      "the decimal points of x, y and z are not evenly spaced (fixed columns expected)");
  return width;
}

vec3 read_triplet(std::string_view line, std::size_t start, std::size_t width, const char* what,
                  const std::filesystem::path& name, std::size_t line_number) {
  vec3 v{};
  for (std::size_t k = 0; k < 3; ++k) {
    const auto field = start + k * width < line.size() ? line.substr(start + k * width, width)
                                                       : std::string_view{};
    const auto value = parse_real<float>(field);
    if (!value) {
      if (trim(field).empty())
        throw io_error(name, line_number,
                       std::string("short line: ") + what + " " + axis_names[k] + " is missing");
      throw io_error(name, line_number,
                     std::string(what) + " " + axis_names[k] + " " + in_quotes(trim(field))
                       + " is not a number");
    }
    v[k] = *value;
  }
  return v;
}

atom read_atom(std::string_view line, std::size_t width, const std::filesystem::path& name,
               std::size_t line_number) {
  if (line.size() < coordinates_column + 3 * width)
    throw io_error(name, line_number,
                   "short line: " + std::to_string(line.size()) + " characters, at least "
                     + std::to_string(coordinates_column + 3 * width) + " expected");
  atom a;
  const auto residue_number = parse_integer<std::int32_t>(line.substr(0, 5));
  if (!residue_number)
    throw io_error(name, line_number,
                   "residue number " + in_quotes(trim(line.substr(0, 5)))
                     + " (columns 1-5) is not an integer");
  a.residue_number = *residue_number;
  a.residue_name = std::string(trim(line.substr(5, 5)));
  a.atom_name = std::string(trim(line.substr(10, 5)));
  a.position_nm = read_triplet(line, coordinates_column, width, "position", name, line_number);
  const auto velocity_column = coordinates_column + 3 * width;
  if (line.size() > velocity_column && !trim(line.substr(velocity_column)).empty())
    a.velocity_nm_ps = read_triplet(line, velocity_column, width, "velocity", name, line_number);
  return a;
}

box_matrix read_box(std::string_view line, const std::filesystem::path& name,
                    std::size_t line_number, std::size_t atom_count) {
  const auto fields = detail::split_fields(line);
  float v[9] = {};
  for (std::size_t i = 0; i < fields.size() && i < 9; ++i) {
    const auto value = parse_real<float>(fields[i]);
    if (!value)
      throw io_error(name, line_number,
                     "box line: " + in_quotes(fields[i]) + " is not a number (is the atom count "
                       + std::to_string(atom_count) + " on line 2 too small?)");
    v[i] = *value;
  }
  if (fields.size() != 3 && fields.size() != 9)
    throw io_error(name, line_number,
                   "box line must hold 3 or 9 numbers, found " + std::to_string(fields.size()));
  // GROMACS order: v1(x) v2(y) v3(z) v1(y) v1(z) v2(x) v2(z) v3(x) v3(y).
  box_matrix box{};
  box[0][0] = v[0];
  box[1][1] = v[1];
  box[2][2] = v[2];
  box[0][1] = v[3];
  box[0][2] = v[4];
  box[1][0] = v[5];
  box[1][2] = v[6];
  box[2][0] = v[7];
  box[2][1] = v[8];
  return box;
}

void append_int(std::string& out, long long value, int width) {
  char buffer[24];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  const auto len = end - buffer;
  if (len < width)
    out.append(static_cast<std::size_t>(width - len), ' ');
  out.append(buffer, end);
}

/// Appends `value` as printf's %{width}.{precision}f would; false when it does not fit.
bool append_fixed(std::string& out, float value, int width, int precision) {
  if (!std::isfinite(value))
    return false;
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, static_cast<double>(value),
                                       std::chars_format::fixed, precision);
  const auto len = end - buffer;
  if (ec != std::errc{} || len > width)
    return false;
  out.append(static_cast<std::size_t>(width - len), ' ');
  out.append(buffer, end);
  return true;
}

void append_name(std::string& out, const std::string& value, bool left_aligned) {
  const auto pad = std::string(5 - value.size(), ' ');
  if (left_aligned)
    out += value + pad;
  else
    out += pad + value;
}

std::string atom_label(std::size_t index, const atom& a) {
  return "atom " + std::to_string(index + 1) + " (" + a.residue_name + " "
    + std::to_string(a.residue_number) + " " + a.atom_name + ")";
}

} // namespace

structure parse_gro(std::string_view text, const std::filesystem::path& name) {
  detail::line_reader lines(text);
  structure s;
  const auto title = lines.next();
  if (!title)
    throw io_error(name, 1, "empty file: a title line is expected");
  s.title = std::string(*title);
  const auto count_line = lines.next();
  if (!count_line)
    throw io_error(name, 2, "missing the atom count line");
  const auto count = parse_integer<long long>(*count_line);
  if (!count || *count < 0)
    throw io_error(name, 2,
                   "atom count " + in_quotes(trim(*count_line)) + " is not a non-negative integer");
  const auto n = static_cast<std::size_t>(*count);
  // Each atom needs a line of at least 21 characters: never reserve more than the text allows.
  s.atoms.reserve(std::min(n, text.size() / 21 + 1));
  std::size_t width = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto line = lines.next();
    if (!line)
      throw io_error(name, lines.number() + 1,
                     "file ends after " + std::to_string(i) + " of " + std::to_string(n)
                       + " atoms (wrong atom count on line 2?)");
    const auto count_hint = [&] {
      return "wrong atom count: line 2 declares " + std::to_string(n)
        + " atoms, but the file ends after " + std::to_string(i + 1) + " lines of atoms";
    };
    if (lines.at_end() && i + 1 < n)
      throw io_error(name, lines.number(), count_hint() + " (the box line included)");
    try {
      if (width == 0)
        width = field_width(*line, name, lines.number());
      s.atoms.push_back(read_atom(*line, width, name, lines.number()));
    } catch (const io_error&) {
      if (lines.at_end())
        throw io_error(name, lines.number(),
                       count_hint() + " and this last line is not an atom line");
      throw;
    }
  }
  const auto box_line = lines.next();
  if (!box_line)
    throw io_error(name, lines.number() + 1,
                   "missing box line after " + std::to_string(n) + " atoms");
  s.box_nm = read_box(*box_line, name, lines.number(), n);
  return s;
}

structure read_gro(const std::filesystem::path& path) {
  const auto text = detail::read_text_file(path);
  return parse_gro(text, path);
}

std::string format_gro(const structure& s) {
  if (s.title.find_first_of("\r\n") != std::string::npos)
    throw md_error("gro title must be a single line");
  const bool velocities = !s.atoms.empty() && s.atoms.front().velocity_nm_ps.has_value();
  std::string out;
  out.reserve(s.title.size() + 16 + s.atoms.size() * (velocities ? 69 : 45) + 100);
  out += s.title;
  out += '\n';
  append_int(out, static_cast<long long>(s.atoms.size()), 5);
  out += '\n';
  for (std::size_t i = 0; i < s.atoms.size(); ++i) {
    const auto& a = s.atoms[i];
    if (a.residue_name.size() > 5 || a.atom_name.size() > 5)
      throw md_error(atom_label(i, a) + ": names longer than 5 characters do not fit a .gro file");
    if (a.velocity_nm_ps.has_value() != velocities)
      throw md_error(atom_label(i, a)
                     + (velocities ? ": has no velocity while atom 1 has one"
                                   : ": has a velocity while atom 1 has none"));
    // Numbers wrap as GROMACS wraps them; negative residue numbers are written as they are.
    const auto residue = a.residue_number >= 0 ? a.residue_number % 100000 : a.residue_number;
    if (residue < -9999)
      throw md_error(atom_label(i, a) + ": residue number does not fit 5 columns");
    append_int(out, residue, 5);
    append_name(out, a.residue_name, true);
    append_name(out, a.atom_name, false);
    append_int(out, static_cast<long long>((i + 1) % 100000), 5);
    for (std::size_t k = 0; k < 3; ++k)
      if (!append_fixed(out, a.position_nm[k], 8, 3))
        throw md_error(atom_label(i, a) + ": position " + axis_names[k] + " = "
                       + std::to_string(a.position_nm[k]) + " nm does not fit %8.3f");
    if (velocities)
      for (std::size_t k = 0; k < 3; ++k)
        if (!append_fixed(out, (*a.velocity_nm_ps)[k], 8, 4))
          throw md_error(atom_label(i, a) + ": velocity " + axis_names[k] + " = "
                         + std::to_string((*a.velocity_nm_ps)[k]) + " nm/ps does not fit %8.4f");
    out += '\n';
  }
  const auto& b = s.box_nm;
  const bool rectangular
    = b[0][1] == 0 && b[0][2] == 0 && b[1][0] == 0 && b[1][2] == 0 && b[2][0] == 0 && b[2][1] == 0;
  const float values[9]
    = {b[0][0], b[1][1], b[2][2], b[0][1], b[0][2], b[1][0], b[1][2], b[2][0], b[2][1]};
  // The box line is read by splitting at blanks: a value filling its 10 columns gets a blank
  // before it.
  for (std::size_t k = 0; k < (rectangular ? 3U : 9U); ++k) {
    std::string field;
    if (!append_fixed(field, values[k], 16, 5))
      throw md_error("box value " + std::to_string(values[k]) + " nm cannot be written");
    const auto digits = field.substr(field.find_first_not_of(' '));
    out.append(digits.size() < 10 ? 10 - digits.size() : 1, ' ');
    out += digits;
  }
  out += '\n';
  return out;
}

void write_gro(const structure& s, const std::filesystem::path& path) {
  detail::write_formatted(path, [&s] {
    return format_gro(s);
  });
}

} // namespace mummi::md
