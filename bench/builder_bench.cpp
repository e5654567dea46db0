// Membrane builder benchmark: time to build MuMMI's systems (20 x 20 x 15 nm as in
// mini-MuMMI, 31 x 31 x 16 nm as in MuMMI) with the 8-lipid plasma membrane around the demo
// protein. The lipid forms follow insane's head/linker/tail notation for these lipids; the
// builder's cost depends on bead and site counts, not on the force field.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/membrane_builder.hpp"

namespace md = mummi::md;

int main(int argc, char** argv) {
  CLI::App app{"mummi membrane builder benchmark"};
  int repeats = 5;
  std::string protein = MUMMI_SOURCE_DATA_DIR "/demo/protein.gro";
  app.add_option("--repeats", repeats, "Builds per box (median reported)");
  app.add_option("--protein", protein, "Protein structure placed in the membrane");
  CLI11_PARSE(app, argc, argv);

  std::vector<md::lipid_template> templates;
  for (const char* form : {"alname=POPC, alhead=C P, allink=G G, altail=CDCC CCCC",
                           "alname=PAPC, alhead=C P, allink=G G, altail=DDDDC CCCC",
                           "alname=POPE, alhead=E P, allink=G G, altail=CDCC CCCC",
                           "alname=DIPE, alhead=E P, allink=G G, altail=CDDC CDDC",
                           "alname=DPSM, alhead=C P, allink=A A, altail=TCC CCCC",
                           "alname=PAPS, alhead=S P, allink=G G, altail=DDDDC CCCC, charge=-1",
                           "alname=PAP6, alhead=P P P, allink=G G, altail=DDDDC CCCC, charge=-4",
                           "alname=CHOL, altail=RRRRCC"})
    templates.push_back(md::make_lipid_template(md::parse_insane_form(form, "bench", 0), {}));

  md::membrane_recipe r;
  r.upper.lipids = {{"POPC", 0.243}, {"PAPC", 0.121}, {"POPE", 0.020},
                    {"DIPE", 0.061}, {"DPSM", 0.242}, {"CHOL", 0.313}};
  r.lower.lipids = {{"POPC", 0.139}, {"PAPC", 0.075}, {"POPE", 0.054}, {"DIPE", 0.161},
                    {"DPSM", 0.108}, {"PAPS", 0.161}, {"PAP6", 0.022}, {"CHOL", 0.280}};
  md::protein_placement p;
  p.coordinates = md::read_gro(protein);
  p.molecule_name = "DPR";
  p.charge = 4;
  p.depth_nm = 0.3;

  std::printf("| box (nm) | beads | lipids upper / lower | solvent | NA / CL | build ms (median of "
              "%d) |\n|---|---:|---:|---:|---:|---:|\n",
              repeats);
  for (auto [x, z] : {std::pair{20.0, 15.0}, std::pair{31.0, 16.0}}) {
    r.box_x_nm = r.box_y_nm = x;
    r.box_z_nm = z;
    p.x_nm = p.y_nm = x / 2;
    r.protein = p;
    std::vector<double> ms;
    md::built_membrane m;
    for (int i = 0; i < repeats; ++i) {
      r.seed = static_cast<std::uint64_t>(i + 1);
      auto t0 = std::chrono::steady_clock::now();
      m = md::build_membrane(r, templates);
      ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::size_t up = 0, lo = 0;
    for (const auto& b : m.upper)
      up += b.count;
    for (const auto& b : m.lower)
      lo += b.count;
    std::printf("| %.0f x %.0f x %.0f | %zu | %zu / %zu | %zu | %zu / %zu | %.1f |\n", x, x, z,
                m.coordinates.atoms.size(), up, lo, m.solvent_beads, m.cations, m.anions,
                ms[ms.size() / 2]);
  }
}
