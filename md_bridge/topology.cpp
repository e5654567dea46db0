#include "mummi/md_bridge/topology.hpp"

#include "mummi/md_bridge/errors.hpp"
#include "text_file.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <unordered_map>
#include <utility>

namespace mummi::md {

namespace fs = std::filesystem;

namespace {

using detail::parse_integer;
using detail::parse_real;
using detail::split_fields;
using detail::trim;

// ---------------------------------------------------------------------------------------------
// Sections

/// How an interaction section's line starts: `atoms` atom indices then the function type.
/// all_atoms: every field is an atom index ([ exclusions ]); site_only: one index, the function
/// type, then free-form fields ([ virtual_sitesn ]).
constexpr int all_atoms = -1;
constexpr int site_only = -2;

struct interaction_spec {
  std::string_view name;
  int atoms;
};

/// Interaction sections in the order they are written.
constexpr std::array<interaction_spec, 23> interaction_specs{{
  {"bonds", 2},
  {"pairs", 2},
  {"pairs_nb", 2},
  {"angles", 3},
  {"dihedrals", 4},
  {"cmap", 5},
  {"constraints", 2},
  {"settles", 1},
  {"exclusions", all_atoms},
  {"virtual_sites1", 2},
  {"virtual_sites2", 3},
  {"virtual_sites3", 4},
  {"virtual_sites4", 5},
  {"virtual_sitesn", site_only},
  {"position_restraints", 1},
  {"distance_restraints", 2},
  {"dihedral_restraints", 4},
  {"orientation_restraints", 2},
  {"angle_restraints", 4},
  {"angle_restraints_z", 2},
  {"polarization", 2},
  {"water_polarization", 1},
  {"thole_polarization", 4},
}};

constexpr std::array<std::string_view, 11> parameter_section_names{"defaults",
                                                                   "atomtypes",
                                                                   "bondtypes",
                                                                   "constrainttypes",
                                                                   "pairtypes",
                                                                   "angletypes",
                                                                   "dihedraltypes",
                                                                   "nonbond_params",
                                                                   "implicit_genborn_params",
                                                                   "implicit_surface_params",
                                                                   "cmaptypes"};

enum class section_kind {
  none,
  moleculetype,
  atoms,
  interactions,
  parameters,
  system,
  molecules,
  intermolecular,
};

struct section_state {
  section_kind kind = section_kind::none;
  std::string name;                       ///< canonical name
  const interaction_spec* spec = nullptr; ///< for interactions
};

bool is_molecule_content(section_kind k) {
  return k == section_kind::atoms || k == section_kind::interactions;
}

/// Canonical section state for a header name, or nothing when the name is unknown.
std::optional<section_state> classify_section(std::string_view name) {
  const auto eq = [&](std::string_view known) {
    return detail::gromacs_names_equal(name, known);
  };
  if (eq("moleculetype"))
    return section_state{section_kind::moleculetype, "moleculetype", nullptr};
  if (eq("atoms"))
    return section_state{section_kind::atoms, "atoms", nullptr};
  if (eq("system"))
    return section_state{section_kind::system, "system", nullptr};
  if (eq("molecules"))
    return section_state{section_kind::molecules, "molecules", nullptr};
  if (eq("intermolecular_interactions"))
    return section_state{section_kind::intermolecular, "intermolecular_interactions", nullptr};
  for (const auto& spec : interaction_specs)
    if (eq(spec.name))
      return section_state{section_kind::interactions, std::string(spec.name), &spec};
  for (const auto known : parameter_section_names)
    if (eq(known))
      return section_state{section_kind::parameters, std::string(known), nullptr};
  return std::nullopt;
}

const interaction_spec* find_spec(std::string_view name) {
  for (const auto& spec : interaction_specs)
    if (spec.name == name)
      return &spec;
  return nullptr;
}

/// Sections with their own member in molecule_type.
bool is_explicit_section(std::string_view name) {
  return name == "bonds" || name == "angles" || name == "dihedrals" || name == "constraints"
    || name == "exclusions" || name == "position_restraints";
}

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

/// False when `a` and `b` cannot hold together (one asks for a macro the other excludes).
bool compatible(const condition& a, const condition& b) {
  for (const auto& x : a)
    for (const auto& y : b)
      if (x.macro == y.macro && x.defined != y.defined)
        return false;
  return true;
}

/// Atoms of a molecule type counted per distinct condition, so that alternative [ atoms ]
/// blocks (`#ifndef HEAVY_H` ... `#else` ... `#endif`) each number their atoms from 1.
class atom_tally {
public:
  /// The most atoms that can exist together with a line under `c`: the maximum, over the
  /// settings of the macros `c` leaves open, of the atoms whose condition holds.
  std::size_t visible(const condition& c) const {
    std::vector<std::string_view> open;
    for (const auto& [cond, count] : counts_)
      for (const auto& term : cond)
        if (std::none_of(c.begin(), c.end(),
                         [&](const condition_term& t) {
                           return t.macro == term.macro;
                         })
            && std::find(open.begin(), open.end(), term.macro) == open.end())
          open.push_back(term.macro);
    if (open.size() > 12) { // not met in practice; an upper bound then
      std::size_t n = 0;
      for (const auto& [cond, count] : counts_)
        if (compatible(cond, c))
          n += count;
      return n;
    }
    std::size_t best = 0;
    for (std::size_t mask = 0; mask < (std::size_t{1} << open.size()); ++mask) {
      const auto is_defined = [&](std::string_view macro) {
        for (const auto& t : c)
          if (t.macro == macro)
            return t.defined;
        const auto i
          = static_cast<std::size_t>(std::find(open.begin(), open.end(), macro) - open.begin());
        return ((mask >> i) & 1U) != 0;
      };
      std::size_t n = 0;
      for (const auto& [cond, count] : counts_)
        if (std::all_of(cond.begin(), cond.end(), [&](const condition_term& t) {
              return is_defined(t.macro) == t.defined;
            }))
          n += count;
      best = std::max(best, n);
    }
    return best;
  }
  void add(const condition& c) {
    for (auto& [cond, count] : counts_)
      if (cond == c) {
        ++count;
        return;
      }
    counts_.emplace_back(c, 1);
  }

private:
  std::vector<std::pair<condition, std::size_t>> counts_;
};

// ---------------------------------------------------------------------------------------------
// Reading

struct where {
  const fs::path& file;
  std::size_t line;
  std::size_t depth;
};

struct if_frame {
  condition_term term;
  bool parent_active = true;
  bool taken = true;
  bool else_seen = false;
  std::size_t line = 0;
};

/// Line split into data and comment.
struct split_line {
  std::string_view data; ///< trimmed, comment removed
  std::string comment;   ///< after ';', trimmed; empty when none
};

split_line split_comment(std::string_view line) {
  const auto pos = line.find(';');
  if (pos == std::string_view::npos)
    return {trim(line), {}};
  return {trim(line.substr(0, pos)), std::string(trim(line.substr(pos + 1)))};
}

class topology_reader {
public:
  topology_reader(topology& top, const topology_options& options) : top_(top), options_(options) {
    for (const auto& d : options.defines)
      for (auto name : split_fields(d)) {
        if (name.rfind("-D", 0) == 0)
          name.remove_prefix(2);
        name = name.substr(0, name.find('='));
        if (!name.empty())
          top_.defines.insert(std::string(name));
      }
  }

  void read_text(std::string_view text, const fs::path& file, std::size_t depth);
  void read_top(std::string_view text, const fs::path& file) {
    std::error_code ec;
    auto canonical = fs::weakly_canonical(file, ec);
    include_stack_.push_back(ec ? file : canonical);
    read_text(text, file, 0);
    include_stack_.pop_back();
    check_molecule_named();
  }

private:
  bool active() const {
    return frames_.empty() || (frames_.back().parent_active && frames_.back().taken);
  }
  condition current_condition() const {
    condition c;
    c.reserve(frames_.size());
    for (const auto& f : frames_)
      c.push_back(f.term);
    return c;
  }
  const section_state& context() const {
    return active() ? section_ : inactive_section_;
  }
  molecule_type* open_molecule() {
    return molecule_ ? &top_.molecule_types[*molecule_] : nullptr;
  }
  /// True when the line at `w` sits inside a molecule type defined in the same file, so it
  /// belongs to that molecule type rather than to the file's raw lines.
  bool own_molecule_context(const where& w) const {
    const auto kind = context().kind;
    if (kind == section_kind::moleculetype)
      return true;
    if (!is_molecule_content(kind) || !molecule_ || (!active() && inactive_raw_))
      return false;
    return top_.molecule_types[*molecule_].source == w.file;
  }

  void raw_line(std::string text, const where& w) {
    if (w.depth != 0)
      return;
    flush_held();
    if (after_system_)
      top_.trailer.push_back({std::move(text), current_condition()});
    else
      top_.preamble.push_back({std::move(text), current_condition(), {}});
  }
  void flush_held() {
    for (auto& h : held_)
      top_.preamble.push_back(std::move(h));
    held_.clear();
  }

  void comment_line(std::string_view line, const where& w) {
    const auto kind = context().kind;
    // Comments of [ system ] and [ molecules ] are not kept: format_top writes its own.
    if (w.depth != 0 || kind == section_kind::system || kind == section_kind::molecules)
      return;
    if (own_molecule_context(w))
      held_.push_back({std::string(line), current_condition(), {}});
    else
      raw_line(std::string(line), w);
  }

  /// Keeps a directive that is not executed here (#define, #undef, an #include whose condition
  /// fails): with the molecule type it sits in when that was defined in this file, else as a
  /// raw line of the top file.
  void directive_line(std::string text, const where& w) {
    if (context().kind == section_kind::moleculetype && !molecule_) {
      pending_directives_.push_back({std::move(text), current_condition()});
    } else if (own_molecule_context(w) && molecule_) {
      if (w.depth == 0)
        held_.clear();
      open_molecule()->extra_lines.push_back({std::move(text), current_condition()});
    } else {
      raw_line(std::move(text), w);
    }
  }

  /// Throws when a [ moleculetype ] section ended without its name line.
  void check_molecule_named() {
    if (unnamed_molecule_)
      throw io_error(unnamed_molecule_->first, unnamed_molecule_->second,
                     "[ moleculetype ] without its line 'name nrexcl'");
  }
  void directive(std::string_view line, const where& w, std::size_t file_base);
  void include(std::string_view line, std::string_view argument, const where& w);
  void header(std::string_view line, const where& w);
  void data_line(std::string_view line, const where& w);
  void define_molecule(const split_line& s, const where& w);
  void atom_line(const split_line& s, const where& w);
  void interaction_line(const split_line& s, const where& w);
  void molecules_line(const split_line& s, const where& w);

  topology& top_;
  const topology_options& options_;
  std::vector<if_frame> frames_;
  std::vector<fs::path> include_stack_;
  section_state section_;          ///< set by lines whose condition holds
  section_state inactive_section_; ///< set by lines in a region whose condition fails
  bool inactive_raw_ = false;      ///< a failed region left molecule content: keep lines raw
  bool intermolecular_ = false;
  bool after_system_ = false;
  std::optional<std::size_t> molecule_;
  std::vector<topology_entry> held_; ///< comments inside a molecule type of the top file
  std::vector<atom_tally> tallies_;  ///< per molecule type
  std::vector<topology_line> pending_directives_; ///< between [ moleculetype ] and its name
  std::optional<std::pair<fs::path, std::size_t>> unnamed_molecule_; ///< header awaiting a name
  std::unordered_map<std::string, std::pair<fs::path, std::size_t>> defined_at_;
  std::size_t content_added_ = 0; ///< atoms and interactions appended so far
  std::size_t effects_ = 0;       ///< #define/#undef executed so far
  std::vector<std::string>* pending_annotations_ = nullptr;
  std::optional<std::size_t> last_molecule_of_file_;
};

void topology_reader::read_text(std::string_view text, const fs::path& file, std::size_t depth) {
  const auto file_base = frames_.size();
  std::vector<std::string> annotations;
  auto* const outer_annotations = pending_annotations_;
  const auto outer_last_molecule = last_molecule_of_file_;
  pending_annotations_ = &annotations;
  last_molecule_of_file_.reset();

  detail::line_reader lines(text);
  while (auto next = lines.next()) {
    const auto line_number = lines.number();
    std::string joined;
    std::string_view line = *next;
    // A trailing backslash continues the line.
    while (!trim(line).empty() && trim(line).back() == '\\') {
      const auto body = trim(line);
      joined = std::string(body.substr(0, body.size() - 1)) + " ";
      const auto more = lines.next();
      if (more)
        joined += *more;
      line = joined;
      if (!more)
        break;
    }
    const where w{file, line_number, depth};
    const auto t = trim(line);
    if (t.empty() || t.front() == ';') {
      if (t.size() >= 2 && t[0] == ';' && t[1] == '@')
        pending_annotations_->emplace_back(t);
      else
        comment_line(line, w);
    } else if (t.front() == '#') {
      directive(t, w, file_base);
    } else if (t.front() == '[') {
      header(line, w);
    } else {
      data_line(line, w);
    }
  }

  if (frames_.size() > file_base) {
    const auto& f = frames_[file_base];
    throw io_error(file, f.line,
                   std::string("unterminated #") + (f.term.defined ? "ifdef " : "ifndef ")
                     + f.term.macro + ": no #endif before the end of the file");
  }
  if (!annotations.empty()) {
    if (last_molecule_of_file_) {
      auto& target = top_.molecule_types[*last_molecule_of_file_].annotations;
      target.insert(target.end(), annotations.begin(), annotations.end());
    } else if (depth == 0) {
      for (auto& a : annotations)
        top_.preamble.push_back({std::move(a), {}, {}});
    }
  }
  if (depth == 0)
    flush_held();
  pending_annotations_ = outer_annotations;
  last_molecule_of_file_ = outer_last_molecule;
}

void topology_reader::directive(std::string_view t, const where& w, std::size_t file_base) {
  auto rest = trim(t.substr(1));
  std::size_t n = 0;
  while (n < rest.size() && !detail::is_space(rest[n]))
    ++n;
  const auto word = rest.substr(0, n);
  const auto argument = split_comment(rest.substr(n)).data;
  const bool was_active = active();
  const auto enter_inactive = [&] {
    if (was_active && !active()) {
      inactive_section_ = section_;
      inactive_raw_ = false;
    }
  };

  if (word == "ifdef" || word == "ifndef") {
    const auto fields = split_fields(argument);
    if (fields.size() != 1)
      throw io_error(w.file, w.line, "#" + std::string(word) + " needs exactly one macro name");
    const bool defined = word == "ifdef";
    const bool is_set = top_.defines.find(fields[0]) != top_.defines.end();
    frames_.push_back(
      {{std::string(fields[0]), defined}, was_active, is_set == defined, false, w.line});
    enter_inactive();
  } else if (word == "else") {
    if (frames_.size() <= file_base)
      throw io_error(w.file, w.line, "#else without #ifdef or #ifndef");
    auto& f = frames_.back();
    if (f.else_seen)
      throw io_error(w.file, w.line,
                     "second #else for the #ifdef on line " + std::to_string(f.line));
    f.else_seen = true;
    f.taken = !f.taken;
    f.term.defined = !f.term.defined;
    enter_inactive();
  } else if (word == "endif") {
    if (frames_.size() <= file_base)
      throw io_error(w.file, w.line, "#endif without #ifdef or #ifndef");
    frames_.pop_back();
    enter_inactive();
  } else if (word == "define" || word == "undef") {
    const auto fields = split_fields(argument);
    if (fields.empty())
      throw io_error(w.file, w.line, "#" + std::string(word) + " needs a macro name");
    if (word == "undef" && fields.size() != 1)
      throw io_error(w.file, w.line, "#undef takes exactly one macro name");
    if (was_active) {
      ++effects_;
      if (word == "define")
        top_.defines.insert(std::string(fields[0]));
      else
        top_.defines.erase(std::string(fields[0]));
    }
    directive_line(std::string(t), w);
  } else if (word == "include") {
    include(t, argument, w);
  } else {
    throw io_error(w.file, w.line,
                   "unsupported preprocessor directive " + in_quotes(std::string("#") += word)
                     + " (GROMACS knows #include, #define, #undef, #ifdef, #ifndef, #else, "
                       "#endif)");
  }
}

void topology_reader::include(std::string_view line, std::string_view argument, const where& w) {
  if (argument.size() < 2
      || !((argument.front() == '"' && argument.back() == '"')
           || (argument.front() == '<' && argument.back() == '>')))
    throw io_error(w.file, w.line, "#include needs a file name in quotes: " + in_quotes(line));
  const auto name = std::string(trim(argument.substr(1, argument.size() - 2)));
  if (name.empty())
    throw io_error(w.file, w.line, "#include with an empty file name");

  const bool in_own_molecule = own_molecule_context(w) && molecule_.has_value();
  if (!active()) {
    // Not read, as grompp would not read it; kept so the text can be written back.
    directive_line(std::string(line), w);
    return;
  }

  fs::path resolved;
  std::vector<fs::path> candidates;
  const fs::path requested(name);
  if (requested.is_absolute()) {
    candidates.push_back(requested);
  } else {
    const auto dir = w.file.parent_path();
    candidates.push_back(dir.empty() ? requested : dir / requested);
    for (const auto& d : options_.include_dirs)
      candidates.push_back(d / requested);
    if (!options_.share_dir.empty())
      candidates.push_back(options_.share_dir / requested);
  }
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) {
      resolved = c;
      break;
    }
  }
  if (resolved.empty()) {
    std::string searched;
    for (const auto& c : candidates)
      searched += (searched.empty() ? "" : ", ") + c.string();
    throw io_error(w.file, w.line,
                   "cannot find include file " + in_quotes(name) + " (searched " + searched + ")");
  }
  std::error_code ec;
  auto canonical = fs::weakly_canonical(resolved, ec);
  if (ec)
    canonical = resolved;
  if (std::find(include_stack_.begin(), include_stack_.end(), canonical) != include_stack_.end()) {
    std::string chain;
    for (const auto& p : include_stack_)
      chain += p.string() + " -> ";
    throw io_error(w.file, w.line, "include cycle: " + chain + canonical.string());
  }
  if (include_stack_.size() >= 64)
    throw io_error(w.file, w.line, "includes nested more than 64 deep");

  std::string text;
  try {
    text = detail::read_text_file(resolved);
  } catch (const io_error& e) {
    throw io_error(w.file, w.line, "cannot read include file " + in_quotes(name) + ": " + e.what());
  }

  const auto molecule_types_before = top_.molecule_types.size();
  const auto sections_before = top_.parameter_sections.size();
  const auto molecules_before = top_.molecules.size();
  const auto system_before = top_.system_name;
  const auto content_before = content_added_;
  const auto effects_before = effects_;
  const auto open_before = molecule_;

  include_stack_.push_back(canonical);
  read_text(text, resolved, w.depth + 1);
  include_stack_.pop_back();

  if (w.depth != 0)
    return;
  // An include that only continued the molecule type of the top file (a position-restraint
  // file, say) is merged into it; anything else stays an #include line.
  const bool only_continued = in_own_molecule && molecule_ == open_before
    && top_.molecule_types.size() == molecule_types_before
    && top_.parameter_sections.size() == sections_before
    && top_.molecules.size() == molecules_before && top_.system_name == system_before
    && effects_ == effects_before && content_added_ > content_before;
  if (only_continued) {
    held_.clear();
    return;
  }
  flush_held();
  if (after_system_)
    top_.trailer.push_back({std::string(line), current_condition()});
  else
    top_.preamble.push_back({std::string(line), current_condition(), {}});
}

void topology_reader::header(std::string_view line, const where& w) {
  const auto t = trim(line);
  const auto close = t.find(']');
  if (close == std::string_view::npos)
    throw io_error(w.file, w.line, "malformed section header " + in_quotes(t) + ": no ']'");
  const auto after = trim(t.substr(close + 1));
  if (!after.empty() && after.front() != ';')
    throw io_error(w.file, w.line, "unexpected text after the section header: " + in_quotes(after));
  const auto name = trim(t.substr(1, close - 1));
  auto state = classify_section(name);
  if (!state)
    throw io_error(w.file, w.line, "unknown section [ " + std::string(name) + " ]");
  if (intermolecular_ && state->kind == section_kind::interactions) {
    state->kind = section_kind::intermolecular;
  }
  const auto kind = state->kind;

  if (!active()) {
    if (!inactive_raw_ && is_molecule_content(kind) && molecule_) {
      inactive_section_ = *state;
      if (w.depth == 0 && !own_molecule_context(w))
        raw_line(std::string(line), w);
      return;
    }
    // A failed region that leaves molecule content: keep its lines as written.
    inactive_raw_ = true;
    inactive_section_ = *state;
    if (kind == section_kind::parameters)
      top_.parameter_sections.push_back({state->name, w.file, {}});
    raw_line(std::string(line), w);
    return;
  }

  check_molecule_named();
  switch (kind) {
    case section_kind::moleculetype:
      if (w.depth == 0)
        flush_held();
      molecule_.reset();
      section_ = *state;
      unnamed_molecule_ = std::make_pair(w.file, w.line);
      return;
    case section_kind::atoms:
    case section_kind::interactions:
      if (!molecule_)
        throw io_error(w.file, w.line,
                       "section [ " + state->name
                         + " ] outside a molecule type (no "
                           "[ moleculetype ] with a name line before it)");
      section_ = *state;
      if (w.depth == 0 && !own_molecule_context(w))
        raw_line(std::string(line), w);
      return;
    case section_kind::parameters:
      molecule_.reset();
      section_ = *state;
      top_.parameter_sections.push_back({state->name, w.file, {}});
      raw_line(std::string(line), w);
      return;
    case section_kind::system:
    case section_kind::molecules:
      molecule_.reset();
      section_ = *state;
      if (w.depth == 0)
        flush_held();
      after_system_ = true;
      return;
    case section_kind::intermolecular:
      molecule_.reset();
      intermolecular_ = true;
      section_ = *state;
      after_system_ = true;
      raw_line(std::string(line), w);
      return;
    case section_kind::none: break;
  }
}

void topology_reader::data_line(std::string_view line, const where& w) {
  const auto s = split_comment(line);
  const auto& ctx = context();
  const bool is_active = active();
  if (!is_active && inactive_raw_) {
    if (ctx.kind == section_kind::parameters && !top_.parameter_sections.empty())
      top_.parameter_sections.back().lines.push_back({std::string(line), current_condition()});
    raw_line(std::string(line), w);
    return;
  }
  switch (ctx.kind) {
    case section_kind::none:
      // grompp ignores text before the first section (banners of some force fields).
      raw_line(std::string(line), w);
      return;
    case section_kind::moleculetype:
      if (!is_active)
        throw io_error(w.file, w.line,
                       "a [ moleculetype ] name line under a failing #ifdef/#ifndef is not "
                       "supported; put the whole molecule type inside the condition");
      if (molecule_)
        throw io_error(w.file, w.line,
                       "[ moleculetype ] holds one line (name nrexcl); found a second: "
                         + in_quotes(s.data));
      define_molecule(s, w);
      return;
    case section_kind::atoms:
    case section_kind::interactions:
      if (ctx.kind == section_kind::atoms)
        atom_line(s, w);
      else
        interaction_line(s, w);
      if (w.depth == 0 && !own_molecule_context(w))
        raw_line(std::string(line), w);
      else if (w.depth == 0)
        held_.clear();
      return;
    case section_kind::parameters:
      if (!top_.parameter_sections.empty())
        top_.parameter_sections.back().lines.push_back({std::string(line), current_condition()});
      raw_line(std::string(line), w);
      return;
    case section_kind::system:
      if (is_active) {
        if (!top_.system_name.empty())
          top_.system_name += ' ';
        top_.system_name += std::string(s.data);
      }
      return;
    case section_kind::molecules: molecules_line(s, w); return;
    case section_kind::intermolecular: raw_line(std::string(line), w); return;
  }
}

void topology_reader::define_molecule(const split_line& s, const where& w) {
  const auto fields = split_fields(s.data);
  if (fields.size() != 2)
    throw io_error(w.file, w.line,
                   "[ moleculetype ] line needs 2 fields (name nrexcl), found "
                     + std::to_string(fields.size()));
  const auto nrexcl = parse_integer<int>(fields[1]);
  if (!nrexcl || *nrexcl < 0)
    throw io_error(w.file, w.line,
                   "nrexcl " + in_quotes(fields[1]) + " is not a non-negative integer");
  const std::string name(fields[0]);
  if (const auto it = defined_at_.find(name); it != defined_at_.end())
    throw io_error(w.file, w.line,
                   "molecule type " + in_quotes(name) + " is already defined at "
                     + it->second.first.string() + ":" + std::to_string(it->second.second));
  defined_at_.emplace(name, std::make_pair(w.file, w.line));
  molecule_type m;
  m.name = name;
  m.nrexcl = *nrexcl;
  m.source = w.file;
  m.extra_lines = std::move(pending_directives_);
  pending_directives_.clear();
  m.annotations = std::move(*pending_annotations_);
  pending_annotations_->clear();
  top_.molecule_types.push_back(std::move(m));
  tallies_.emplace_back();
  unnamed_molecule_.reset();
  molecule_ = top_.molecule_types.size() - 1;
  last_molecule_of_file_ = molecule_;
  if (w.depth == 0) {
    held_.clear();
    top_.preamble.push_back({{}, current_condition(), name});
  }
}

void topology_reader::atom_line(const split_line& s, const where& w) {
  auto& m = *open_molecule();
  const auto f = split_fields(s.data);
  if (f.size() < 6 || f.size() > 11)
    throw io_error(w.file, w.line,
                   "[ atoms ] line has " + std::to_string(f.size())
                     + " fields; 6 to 11 expected (nr type resnr residue atom cgnr [charge "
                       "[mass [typeB chargeB massB]]])");
  const auto integer = [&](std::string_view field, const char* what) {
    const auto v = parse_integer<std::int32_t>(field);
    if (!v)
      throw io_error(w.file, w.line,
                     std::string("[ atoms ]: ") + what + " " + in_quotes(field)
                       + " is not an integer");
    return *v;
  };
  const auto real = [&](std::string_view field, const char* what) {
    const auto v = parse_real<double>(field);
    if (!v)
      throw io_error(w.file, w.line,
                     std::string("[ atoms ]: ") + what + " " + in_quotes(field)
                       + " is not a number");
    return *v;
  };
  topology_atom a;
  a.number = integer(f[0], "atom number");
  auto& tally = tallies_[*molecule_];
  a.cond = current_condition();
  const auto expected = static_cast<std::int32_t>(tally.visible(a.cond) + 1);
  if (a.number != expected)
    throw io_error(w.file, w.line,
                   "[ atoms ]: atom number " + std::to_string(a.number) + " out of sequence in "
                     + in_quotes(m.name) + "; expected " + std::to_string(expected));
  a.type = std::string(f[1]);
  a.residue_number = integer(f[2], "residue number");
  a.residue_name = std::string(f[3]);
  a.atom_name = std::string(f[4]);
  a.charge_group = integer(f[5], "charge group");
  if (f.size() > 6)
    a.charge_e = real(f[6], "charge");
  if (f.size() > 7)
    a.mass_u = real(f[7], "mass");
  for (std::size_t i = 8; i < f.size(); ++i)
    a.b_state.emplace_back(f[i]);
  a.comment = s.comment;
  tally.add(a.cond);
  m.atoms.push_back(std::move(a));
  ++content_added_;
}

void topology_reader::interaction_line(const split_line& s, const where& w) {
  auto& m = *open_molecule();
  const auto& section = context();
  const auto* spec = section.spec;
  const auto f = split_fields(s.data);
  const auto label = "[ " + section.name + " ]";
  interaction x;
  x.cond = current_condition();
  const auto atoms = tallies_[*molecule_].visible(x.cond);
  const auto index = [&](std::string_view field) {
    const auto v = parse_integer<std::int32_t>(field);
    if (!v)
      throw io_error(w.file, w.line,
                     label + ": atom index " + in_quotes(field) + " is not an integer");
    if (*v < 1 || static_cast<std::size_t>(*v) > atoms)
      throw io_error(w.file, w.line,
                     label + ": atom index " + std::to_string(*v) + " out of range; molecule type "
                       + in_quotes(m.name) + " has " + std::to_string(atoms) + " atoms");
    return *v;
  };
  std::size_t first_parameter = 0;
  if (spec->atoms == all_atoms) {
    for (const auto field : f)
      x.atoms.push_back(index(field));
    first_parameter = f.size();
  } else {
    const auto n
      = spec->atoms == site_only ? std::size_t{1} : static_cast<std::size_t>(spec->atoms);
    const auto minimum = spec->atoms == site_only ? std::size_t{3} : n;
    if (f.size() < minimum)
      throw io_error(w.file, w.line,
                     label + " line has " + std::to_string(f.size()) + " fields; at least "
                       + std::to_string(minimum)
                       + (spec->atoms == site_only ? " expected (site funct atoms...)"
                                                   : " atom indices expected"));
    for (std::size_t i = 0; i < n; ++i)
      x.atoms.push_back(index(f[i]));
    first_parameter = n;
    if (f.size() > n) {
      const auto function = parse_integer<int>(f[n]);
      if (!function)
        throw io_error(w.file, w.line,
                       label + ": function type " + in_quotes(f[n]) + " is not an integer");
      x.function = *function;
      first_parameter = n + 1;
    }
  }
  for (std::size_t i = first_parameter; i < f.size(); ++i)
    x.parameters.emplace_back(f[i]);
  x.comment = s.comment;
  interactions_of(m, section.name)->push_back(std::move(x));
  ++content_added_;
}

void topology_reader::molecules_line(const split_line& s, const where& w) {
  const auto f = split_fields(s.data);
  if (f.size() != 2)
    throw io_error(w.file, w.line,
                   "[ molecules ] line needs 2 fields (name count), found "
                     + std::to_string(f.size()));
  const auto count = parse_integer<std::int64_t>(f[1]);
  if (!count || *count < 0)
    throw io_error(w.file, w.line,
                   "[ molecules ]: count " + in_quotes(f[1]) + " is not a non-negative integer");
  const std::string name(f[0]);
  if (active() && defined_at_.find(name) == defined_at_.end())
    throw io_error(w.file, w.line,
                   "[ molecules ] lists " + in_quotes(name)
                     + " before any [ moleculetype ] defines it");
  top_.molecules.push_back({name, *count, current_condition()});
}

topology parse_with(std::string_view text, const fs::path& name, const topology_options& options) {
  topology top;
  top.path = name;
  topology_reader reader(top, options);
  reader.read_top(text, name);
  return top;
}

molecule_type single_molecule(topology&& top, const fs::path& name) {
  std::vector<std::size_t> own;
  for (std::size_t i = 0; i < top.molecule_types.size(); ++i)
    if (top.molecule_types[i].source == name)
      own.push_back(i);
  if (own.size() != 1)
    throw io_error(
      name, 0,
      "defines " + std::to_string(own.size())
        + " molecule types; an .itp read as one molecule type must define exactly one");
  return std::move(top.molecule_types[own.front()]);
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Emits #ifdef/#ifndef/#else/#endif lines to move from one condition to the next.
class condition_writer {
public:
  explicit condition_writer(std::string& out) : out_(out) {}
  void to(const condition& target) {
    std::size_t p = 0;
    while (p < current_.size() && p < target.size() && current_[p] == target[p])
      ++p;
    if (p == current_.size() && p == target.size())
      return;
    if (p < current_.size() && p < target.size() && current_[p].macro == target[p].macro
        && !else_used_[p]) {
      close_to(p + 1);
      out_ += "#else\n";
      current_[p] = target[p];
      else_used_[p] = true;
      ++p;
    } else {
      close_to(p);
    }
    for (; p < target.size(); ++p) {
      out_ += target[p].defined ? "#ifdef " : "#ifndef ";
      out_ += target[p].macro;
      out_ += '\n';
      current_.push_back(target[p]);
      else_used_.push_back(false);
    }
  }
  void finish() {
    close_to(0);
  }

private:
  void close_to(std::size_t level) {
    while (current_.size() > level) {
      out_ += "#endif\n";
      current_.pop_back();
      else_used_.pop_back();
    }
  }
  std::string& out_;
  condition current_;
  std::vector<bool> else_used_;
};

condition common_prefix(const condition& a, const condition& b) {
  condition c;
  for (std::size_t i = 0; i < a.size() && i < b.size() && a[i] == b[i]; ++i)
    c.push_back(a[i]);
  return c;
}

template<class Items>
condition common_condition(const Items& items) {
  condition c = items.front().cond;
  for (const auto& item : items)
    c = common_prefix(c, item.cond);
  return c;
}

void append_padded(std::string& out, std::string_view s, std::size_t width, bool left) {
  if (!left && s.size() < width)
    out.append(width - s.size(), ' ');
  out += s;
  if (left && s.size() < width)
    out.append(width - s.size(), ' ');
}

/// A field written into a line: one word without ';' (a comment would start); a word that
/// starts a line must not start with '[' or '#'.
void check_token(const std::string& s, const std::string& what, const std::string& molecule,
                 bool starts_line = false) {
  const bool bad = s.empty()
    || std::any_of(s.begin(), s.end(),
                   [](char c) {
                     return detail::is_space(c) || c == '\n' || c == ';';
                   })
    || (starts_line && (s.front() == '[' || s.front() == '#'));
  if (bad)
    throw md_error("molecule type " + in_quotes(molecule) + ": " + what + " " + in_quotes(s)
                   + " must be one word without ';'"
                   + (starts_line ? ", not starting with '[' or '#'" : ""));
}

/// A line must not end in '\\': the reader would join the next line to it.
void check_line_end(const std::string& out, const std::string& molecule) {
  if (!out.empty() && out.back() == '\\')
    throw md_error("molecule type " + in_quotes(molecule)
                   + ": a line would end in '\\' and continue on the next: "
                   + out.substr(out.rfind('\n') + 1));
}

/// A comment written at the end of a line.
void check_comment(const std::string& s, const std::string& molecule) {
  if (s.find_first_of("\r\n") != std::string::npos || (!s.empty() && s.back() == '\\'))
    throw md_error("molecule type " + in_quotes(molecule) + ": comment " + in_quotes(s)
                   + " must be one line not ending in '\\'");
}

void write_atom(std::string& out, const topology_atom& a, const std::string& molecule) {
  check_token(a.type, "atom type", molecule);
  check_token(a.residue_name, "residue name", molecule);
  check_token(a.atom_name, "atom name", molecule);
  if (!a.charge_e && (a.mass_u || !a.b_state.empty()))
    throw md_error("molecule type " + in_quotes(molecule) + ": atom " + std::to_string(a.number)
                   + " has a mass or B state but no charge");
  if (!a.mass_u && !a.b_state.empty())
    throw md_error("molecule type " + in_quotes(molecule) + ": atom " + std::to_string(a.number)
                   + " has a B state but no mass");
  append_padded(out, std::to_string(a.number), 6, false);
  out += ' ';
  append_padded(out, a.type, 8, true);
  out += ' ';
  append_padded(out, std::to_string(a.residue_number), 6, false);
  out += ' ';
  append_padded(out, a.residue_name, 6, true);
  out += ' ';
  append_padded(out, a.atom_name, 6, true);
  out += ' ';
  append_padded(out, std::to_string(a.charge_group), 5, false);
  if (a.charge_e) {
    out += ' ';
    append_padded(out, detail::shortest(*a.charge_e), 10, false);
  }
  if (a.mass_u) {
    out += ' ';
    append_padded(out, detail::shortest(*a.mass_u), 10, false);
  }
  for (const auto& b : a.b_state) {
    check_token(b, "B-state field", molecule);
    out += ' ' + b;
  }
  check_comment(a.comment, molecule);
  if (!a.comment.empty())
    out += " ; " + a.comment;
  check_line_end(out, molecule);
  out += '\n';
}

void write_interaction(std::string& out, const interaction& x, const std::string& section,
                       const std::string& molecule) {
  if (x.atoms.empty())
    throw md_error("molecule type " + in_quotes(molecule) + ": a [ " + section
                   + " ] line without atoms");
  bool first = true;
  for (const auto atom : x.atoms) {
    if (!first)
      out += ' ';
    append_padded(out, std::to_string(atom), 5, false);
    first = false;
  }
  if (x.function) {
    out += ' ';
    append_padded(out, std::to_string(*x.function), 5, false);
  } else if (!x.parameters.empty() && section != "exclusions") {
    throw md_error("molecule type " + in_quotes(molecule) + ": a [ " + section
                   + " ] line with parameters needs a function type");
  }
  for (const auto& p : x.parameters) {
    check_token(p, "parameter", molecule);
    out += ' ';
    append_padded(out, p, 10, false);
  }
  check_comment(x.comment, molecule);
  if (!x.comment.empty())
    out += " ; " + x.comment;
  check_line_end(out, molecule);
  out += '\n';
}

void write_section(std::string& out, condition_writer& cw, const std::vector<interaction>& items,
                   const std::string& section, const std::string& molecule) {
  if (items.empty())
    return;
  cw.to(common_condition(items));
  out += "\n[ " + section + " ]\n";
  for (const auto& x : items) {
    cw.to(x.cond);
    write_interaction(out, x, section, molecule);
  }
}

/// Writes a molecule type; `cw` stands at the condition the molecule type sits under.
void write_molecule(std::string& out, condition_writer& cw, const molecule_type& m) {
  check_token(m.name, "molecule type name", m.name, true);
  for (const auto& a : m.annotations) {
    if (a.rfind(";@", 0) != 0 || a.find('\n') != std::string::npos)
      throw md_error("molecule type " + in_quotes(m.name) + ": annotation " + in_quotes(a)
                     + " must be one line starting with ';@'");
    out += a;
    out += '\n';
  }
  out += "[ moleculetype ]\n; name  nrexcl\n";
  out += m.name + "  " + std::to_string(m.nrexcl) + "\n";
  // Macro definitions go first, since parameters below may use them; includes go last.
  const auto is_definition = [](const topology_line& line) {
    const auto t = trim(line.text);
    return t.rfind("#define", 0) == 0 || t.rfind("#undef", 0) == 0;
  };
  for (const auto& line : m.extra_lines)
    if (is_definition(line)) {
      cw.to(line.cond);
      out += line.text;
      out += '\n';
    }
  if (!m.atoms.empty()) {
    cw.to(common_condition(m.atoms));
    out += "\n[ atoms ]\n;   nr type      resnr resid  atom    cgnr     charge       mass\n";
    atom_tally tally;
    for (std::size_t i = 0; i < m.atoms.size(); ++i) {
      const auto expected = tally.visible(m.atoms[i].cond) + 1;
      if (m.atoms[i].number != static_cast<std::int32_t>(expected))
        throw md_error("molecule type " + in_quotes(m.name) + ": atom " + std::to_string(i + 1)
                       + " is numbered " + std::to_string(m.atoms[i].number) + "; expected "
                       + std::to_string(expected));
      tally.add(m.atoms[i].cond);
      cw.to(m.atoms[i].cond);
      write_atom(out, m.atoms[i], m.name);
    }
  }
  for (const auto& spec : interaction_specs) {
    const auto* items = interactions_of(m, spec.name);
    if (items != nullptr)
      write_section(out, cw, *items, std::string(spec.name), m.name);
  }
  for (const auto& [name, items] : m.other_interactions)
    if (find_spec(name) == nullptr || is_explicit_section(name))
      throw md_error("molecule type " + in_quotes(m.name) + ": unknown interaction section "
                     + in_quotes(name));
  for (const auto& line : m.extra_lines)
    if (!is_definition(line)) {
      cw.to(line.cond);
      out += line.text;
      out += '\n';
    }
}

double atom_type_charge(const topology& t, const std::string& type, const std::string& molecule) {
  for (auto s = t.parameter_sections.rbegin(); s != t.parameter_sections.rend(); ++s) {
    if (s->name != "atomtypes")
      continue;
    for (const auto& line : s->lines) {
      if (!holds(line.cond, t.defines))
        continue;
      const auto f = split_fields(split_comment(line.text).data);
      if (f.empty() || f[0] != type)
        continue;
      // The charge is the field just before the particle type (A, S, V, D or B).
      for (std::size_t i = 2; i < f.size(); ++i) {
        const auto& p = f[i];
        if (p.size() == 1 && std::string_view("ASVDB").find(p[0]) != std::string_view::npos) {
          if (const auto q = parse_real<double>(f[i - 1]))
            return *q;
        }
      }
    }
  }
  throw io_error(t.path, 0,
                 "molecule type " + in_quotes(molecule) + ": atom type " + in_quotes(type)
                   + " has no charge in the atom line and no [ atomtypes ] entry");
}

const molecule_type& counted_type(const topology& t, const molecule_count& c) {
  const auto* m = find_molecule_type(t, c.name);
  if (m == nullptr)
    throw io_error(t.path, 0, "[ molecules ] names unknown molecule type " + in_quotes(c.name));
  return *m;
}

/// The list of `m` that holds the interactions of a section with its own member (bonds,
/// angles, dihedrals, constraints, exclusions, position_restraints); nullptr for any other
/// section. `Molecule` is molecule_type or const molecule_type.
template<class Molecule>
auto named_interactions(Molecule& m, std::string_view section) -> decltype(&m.bonds) {
  if (section == "bonds")
    return &m.bonds;
  if (section == "angles")
    return &m.angles;
  if (section == "dihedrals")
    return &m.dihedrals;
  if (section == "constraints")
    return &m.constraints;
  if (section == "exclusions")
    return &m.exclusions;
  if (section == "position_restraints")
    return &m.position_restraints;
  return nullptr;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Public functions

bool holds(const condition& c, const std::set<std::string, std::less<>>& defines) {
  return std::all_of(c.begin(), c.end(), [&](const condition_term& t) {
    return (defines.find(t.macro) != defines.end()) == t.defined;
  });
}

std::vector<interaction>* interactions_of(molecule_type& m, std::string_view section) {
  if (auto* list = named_interactions(m, section))
    return list;
  if (find_spec(section) == nullptr)
    return nullptr;
  auto it = m.other_interactions.find(section);
  if (it == m.other_interactions.end())
    it = m.other_interactions.emplace(std::string(section), std::vector<interaction>{}).first;
  return &it->second;
}

const std::vector<interaction>* interactions_of(const molecule_type& m, std::string_view section) {
  if (const auto* list = named_interactions(m, section))
    return list;
  const auto it = m.other_interactions.find(section);
  return it == m.other_interactions.end() ? nullptr : &it->second;
}

topology parse_topology(std::string_view text, const fs::path& name,
                        const topology_options& options) {
  return parse_with(text, name, options);
}

topology read_topology(const fs::path& path, const topology_options& options) {
  const auto text = detail::read_text_file(path);
  return parse_with(text, path, options);
}

molecule_type parse_itp(std::string_view text, const fs::path& name,
                        const topology_options& options) {
  return single_molecule(parse_with(text, name, options), name);
}

molecule_type read_itp(const fs::path& path, const topology_options& options) {
  return single_molecule(read_topology(path, options), path);
}

std::string format_itp(const molecule_type& m) {
  std::string out;
  condition_writer cw(out);
  write_molecule(out, cw, m);
  cw.finish();
  return out;
}

std::string format_top(const topology& t) {
  std::string out;
  condition_writer cw(out);
  std::set<std::string, std::less<>> written;
  for (const auto& e : t.preamble) {
    cw.to(e.cond);
    if (e.molecule.empty()) {
      if (e.text.find('\n') != std::string::npos)
        throw md_error("topology line " + in_quotes(e.text) + " holds a line break");
      out += e.text;
      out += '\n';
      continue;
    }
    const auto* m = find_molecule_type(t, e.molecule);
    if (m == nullptr)
      throw md_error("topology places molecule type " + in_quotes(e.molecule)
                     + " but defines none of that name");
    if (!written.insert(m->name).second)
      throw md_error("topology places molecule type " + in_quotes(e.molecule) + " twice");
    write_molecule(out, cw, *m);
  }
  for (const auto& m : t.molecule_types) {
    if (!m.source.empty() || written.count(m.name) != 0)
      continue;
    cw.to({});
    out += '\n';
    write_molecule(out, cw, m);
  }
  cw.to({});
  if (!t.system_name.empty() || !t.molecules.empty()) {
    if (t.system_name.find('\n') != std::string::npos)
      throw md_error("system name holds a line break");
    out += "[ system ]\n";
    out += t.system_name;
    out += "\n\n[ molecules ]\n; name  count\n";
    for (const auto& c : t.molecules) {
      check_token(c.name, "molecule name in [ molecules ]", c.name, true);
      cw.to(c.cond);
      append_padded(out, c.name, 16, true);
      out += ' ';
      out += std::to_string(c.count);
      out += '\n';
    }
  }
  for (const auto& line : t.trailer) {
    cw.to(line.cond);
    out += line.text;
    out += '\n';
  }
  cw.finish();
  return out;
}

void write_itp(const molecule_type& m, const fs::path& path) {
  detail::write_formatted(path, [&m] {
    return format_itp(m);
  });
}

void write_top(const topology& t, const fs::path& path) {
  detail::write_formatted(path, [&t] {
    return format_top(t);
  });
}

const molecule_type* find_molecule_type(const topology& t, std::string_view name) {
  for (const auto& m : t.molecule_types)
    if (m.name == name)
      return &m;
  return nullptr;
}

std::size_t atom_count(const molecule_type& m, const std::set<std::string, std::less<>>& defines) {
  return static_cast<std::size_t>(
    std::count_if(m.atoms.begin(), m.atoms.end(), [&](const topology_atom& a) {
      return holds(a.cond, defines);
    }));
}

std::size_t atom_count(const topology& t) {
  std::size_t total = 0;
  for (const auto& c : t.molecules) {
    if (!holds(c.cond, t.defines))
      continue;
    total += static_cast<std::size_t>(c.count) * atom_count(counted_type(t, c), t.defines);
  }
  return total;
}

double net_charge(const topology& t) {
  double total = 0;
  std::unordered_map<std::string, double> per_molecule;
  for (const auto& c : t.molecules) {
    if (!holds(c.cond, t.defines))
      continue;
    const auto& m = counted_type(t, c);
    auto it = per_molecule.find(m.name);
    if (it == per_molecule.end()) {
      double q = 0;
      for (const auto& a : m.atoms)
        if (holds(a.cond, t.defines))
          q += a.charge_e ? *a.charge_e : atom_type_charge(t, a.type, m.name);
      it = per_molecule.emplace(m.name, q).first;
    }
    total += static_cast<double>(c.count) * it->second;
  }
  return total;
}

void add_include(topology& t, const std::string& file, condition cond) {
  t.preamble.push_back({"#include \"" + file + "\"", std::move(cond), {}});
}

void add_parameter_section(topology& t, const std::string& name,
                           const std::vector<std::string>& lines) {
  parameter_section s{name, {}, {}};
  t.preamble.push_back({"[ " + name + " ]", {}, {}});
  for (const auto& line : lines) {
    t.preamble.push_back({line, {}, {}});
    s.lines.push_back({line, {}});
  }
  t.parameter_sections.push_back(std::move(s));
}

} // namespace mummi::md
