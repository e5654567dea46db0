#pragma once

/// A model of GROMACS topology files (`.top`, `.itp`): molecule types with their atoms and
/// interactions (each kept with the preprocessor condition it sits under, so writing a molecule
/// back reproduces its `#ifdef` blocks), force-field sections kept as raw lines, `[ system ]`
/// and `[ molecules ]`. Reading runs the GROMACS preprocessor rules (`#include`, `#define`,
/// `#undef`, `#ifdef`, `#ifndef`, `#else`, `#endif`). Functions are pure and thread-safe.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mummi::md {

/// One level of `#ifdef MACRO` (defined = true) or `#ifndef MACRO` (defined = false); an
/// `#else` flips `defined`.
struct condition_term {
  std::string macro;
  bool defined = true;
  friend bool operator==(const condition_term&, const condition_term&) = default;
};

/// The conjunction of the enclosing `#ifdef`/`#ifndef` levels, outermost first; empty means
/// unconditional.
using condition = std::vector<condition_term>;

/// True when every term of `c` holds for the macro names in `defines`.
bool holds(const condition& c, const std::set<std::string, std::less<>>& defines);

/// One line of `[ atoms ]`.
struct topology_atom {
  std::int32_t number = 1; ///< 1-based, consecutive within the molecule type
  std::string type;        ///< atom type name
  std::int32_t residue_number = 1;
  std::string residue_name;
  std::string atom_name;
  std::int32_t charge_group = 1;
  std::optional<double> charge_e;   ///< absent: the atom type's charge applies
  std::optional<double> mass_u;     ///< absent: the atom type's mass applies
  std::vector<std::string> b_state; ///< typeB, chargeB, massB as written (free energy)
  condition cond;
  std::string comment; ///< text after ';' on the line, without the ';'
  friend bool operator==(const topology_atom&, const topology_atom&) = default;
};

/// One line of an interaction section ([ bonds ], [ angles ], ...).
struct interaction {
  std::vector<std::int32_t> atoms;     ///< 1-based indices into the molecule type's atoms
  std::optional<int> function;         ///< function type; absent when the line has none
  std::vector<std::string> parameters; ///< as written (may name #define macros)
  condition cond;
  std::string comment; ///< text after ';' on the line, without the ';'
  friend bool operator==(const interaction&, const interaction&) = default;
};

/// A raw line (comment, directive, force-field section line) with the condition it sits under.
struct topology_line {
  std::string text;
  condition cond;
  friend bool operator==(const topology_line&, const topology_line&) = default;
};

/// `[ moleculetype ]` and everything that belongs to it.
struct molecule_type {
  std::string name;
  int nrexcl = 1;
  /// `;@` comment lines (e.g. Martini 3 `;@INSANE alhead=C P, ...`) found just before the
  /// `[ moleculetype ]` line, or after the molecule type's content when no other molecule type
  /// of the same file follows; verbatim, ';@' included.
  std::vector<std::string> annotations;
  std::vector<topology_atom> atoms;
  std::vector<interaction> bonds;
  std::vector<interaction> angles;
  std::vector<interaction> dihedrals;
  std::vector<interaction> constraints;
  std::vector<interaction> exclusions; ///< atoms only, no function type
  std::vector<interaction> position_restraints;
  /// Every other interaction section ([ pairs ], [ settles ], [ virtual_sites3 ], [ cmap ],
  /// ...) by section name. For [ virtual_sitesn ] only the site is an atom index; the rest of
  /// the line is kept in `parameters`.
  std::map<std::string, std::vector<interaction>, std::less<>> other_interactions;
  /// Directives inside the molecule type that were not merged into it: `#include` lines under
  /// a condition that did not hold when read (written after the interactions), `#define` and
  /// `#undef` lines (written before the atoms, since parameters may use the macros).
  std::vector<topology_line> extra_lines;
  /// File the `[ moleculetype ]` line was read from; empty for molecule types built in code.
  std::filesystem::path source;
  friend bool operator==(const molecule_type&, const molecule_type&) = default;
};

/// The interactions of section `section` ("bonds", "pairs", ...), or nullptr when the name is
/// not an interaction section. The const overload returns nullptr for an empty generic section.
std::vector<interaction>* interactions_of(molecule_type& m, std::string_view section);
const std::vector<interaction>* interactions_of(const molecule_type& m, std::string_view section);

/// One line of `[ molecules ]`.
struct molecule_count {
  std::string name;
  std::int64_t count = 0;
  condition cond;
  friend bool operator==(const molecule_count&, const molecule_count&) = default;
};

/// A force-field section ([ defaults ], [ atomtypes ], [ bondtypes ], ...) as read from any
/// file of the topology, its data lines kept raw.
struct parameter_section {
  std::string name;
  std::filesystem::path source;
  std::vector<topology_line> lines; ///< data and comment lines in order, the header excluded
  friend bool operator==(const parameter_section&, const parameter_section&) = default;
};

/// One entry of the top file's own text outside its molecule types, [ system ] and
/// [ molecules ]: a raw line, or the place where a molecule type defined in that file is
/// written (`molecule` non-empty, `text` empty).
struct topology_entry {
  std::string text;
  condition cond;
  std::string molecule; ///< name of a molecule type whose definition goes here
  friend bool operator==(const topology_entry&, const topology_entry&) = default;
};

struct topology {
  /// The file read (empty for a topology built in code).
  std::filesystem::path path;
  /// The top file's own lines in order: comments, `#include`, `#define`, force-field sections,
  /// and the places of the molecule types it defines.
  std::vector<topology_entry> preamble;
  /// Every molecule type, from the file and from every resolved `#include`, in the order read.
  std::vector<molecule_type> molecule_types;
  /// Force-field sections of the file and of every resolved `#include`, in the order read.
  std::vector<parameter_section> parameter_sections;
  std::string system_name;
  std::vector<molecule_count> molecules;
  /// Raw lines after `[ system ]` / `[ molecules ]` that belong to neither (directives,
  /// `[ intermolecular_interactions ]` and its sections); written after `[ molecules ]`.
  /// Comment lines inside [ system ] and [ molecules ] are not kept.
  std::vector<topology_line> trailer;
  /// Macro names that hold for counting: the options' defines plus the file's `#define`s,
  /// less its `#undef`s, as at the end of reading.
  std::set<std::string, std::less<>> defines;
  friend bool operator==(const topology&, const topology&) = default;
};

struct topology_options {
  /// Directories searched for `#include` after the including file's own directory.
  std::vector<std::filesystem::path> include_dirs;
  /// The GROMACS share directory, searched last.
  std::filesystem::path share_dir = "/usr/share/gromacs/top";
  /// Macros defined before reading: each string holds names as `NAME`, `NAME=VALUE`,
  /// `-DNAME` or several of them separated by blanks (an mdp `define` value works).
  std::vector<std::string> defines;
};

/// Reads a `.top` or `.itp` file, resolving every `#include` whose condition holds (others are
/// kept as lines). Alternative [ atoms ] blocks (`#ifndef HEAVY_H` ... `#else` ... `#endif`)
/// each number their atoms from where the atoms that can coexist with them end. Text before
/// the first section is kept, as grompp ignores it. Throws io_error naming the file and line
/// for: an unknown section, a wrong number of fields, a non-numeric field, an atom index out
/// of range, atoms out of sequence, an unterminated `#ifdef`, an `#else` or `#endif` without
/// `#ifdef`, an unsupported directive (`#if`), a missing include file (naming the including
/// file), an include cycle, a molecule in [ molecules ] before its definition, a redefined
/// molecule type, a [ moleculetype ] without its name line.
topology read_topology(const std::filesystem::path& path, const topology_options& options = {});

/// As `read_topology` for text; `name` stands for the file in messages and is the base of
/// relative includes.
topology parse_topology(std::string_view text, const std::filesystem::path& name,
                        const topology_options& options = {});

/// Reads a file that defines exactly one molecule type (its includes resolved).
molecule_type read_itp(const std::filesystem::path& path, const topology_options& options = {});
molecule_type parse_itp(std::string_view text, const std::filesystem::path& name,
                        const topology_options& options = {});

/// The `.itp` text of one molecule type: annotations, [ moleculetype ], its `#define`s,
/// [ atoms ], the interaction sections (conditional lines wrapped in `#ifdef`/`#ifndef`/
/// `#else`/`#endif`), then its remaining `#include` lines. Throws md_error for content that
/// cannot be written (a name with blanks or ';', atoms out of sequence, ...).
std::string format_itp(const molecule_type& m);

/// The `.top` text: the preamble (with the molecule types defined in the file itself, and the
/// ones built in code, i.e. with an empty `source`, that no preamble entry places), then
/// [ system ] and [ molecules ] when either is set, then the trailer.
std::string format_top(const topology& t);

/// Write `format_itp` / `format_top` to a file (through a temporary renamed into place).
void write_itp(const molecule_type& m, const std::filesystem::path& path);
void write_top(const topology& t, const std::filesystem::path& path);

/// The molecule type named `name` (exact match), or nullptr.
const molecule_type* find_molecule_type(const topology& t, std::string_view name);

/// Atoms of the system: the sum over [ molecules ] of count x atoms of that type, counting
/// lines whose condition holds for `t.defines`. Throws io_error naming an unknown molecule.
std::size_t atom_count(const topology& t);

/// Number of atoms of `m` whose condition holds for `defines`.
std::size_t atom_count(const molecule_type& m, const std::set<std::string, std::less<>>& defines);

/// Net charge of the system in e, as `atom_count` counts; an atom without a charge takes its
/// type's charge from [ atomtypes ]. Throws io_error naming an unknown molecule or atom type.
double net_charge(const topology& t);

/// Appends `#include "file"` to the preamble.
void add_include(topology& t, const std::string& file, condition cond = {});

/// Appends a force-field section (`[ name ]` and its lines) to the preamble and to
/// `parameter_sections`.
void add_parameter_section(topology& t, const std::string& name,
                           const std::vector<std::string>& lines);

} // namespace mummi::md
