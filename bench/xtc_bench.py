#!/usr/bin/python3
"""XTC reading throughput: MDAnalysis 2.4 against mummi::md's own decoder, side by side.

The trajectory (default): a real coarse-grained one written by GROMACS. The script builds a
~50,000-bead system with mummi itself (`mummi createsims` on the demo force field of
data/demo/: the 127-bead protein DPR on a DPC/DST | DPC/DPS/DST bilayer in a 20 x 20 x 15 nm
box, water and ions, minimised and equilibrated), then runs mdrun from the equilibrated state
with the production parameters createsims wrote, changed only to write a frame every 5 steps
for 1,000 steps (201 frames). The protein's beads come first in the file. The XTC is cached
under build/bench-data/ (with a .json describing it), so later runs skip the ~minutes of
generation; --regenerate makes it again.

--synthetic uses instead the earlier trajectory written by MDAnalysis' XTC writer from random
walks (49,584 beads, a 763-bead protein-like chain first; precision 100). Atoms next to each
other in that file lie much farther apart than in a real system, which changes how XTC
compresses them and what decoding costs: it is not representative, kept for comparison.

--file FILE times any existing XTC (give --leading for the leading-atoms rows).

Then times, on the same file:
  * MDAnalysis: a Universe iterating over all frames, summing the positions of each,
  * xtc_bench (C++): read_xtc whole frames on one thread and on all cores (every frame kept in
    memory, a fresh buffer each); xtc_stream_reader frame by frame reusing one buffer (as an
    in-situ analysis and MDAnalysis do), whole frames and the leading atoms (the protein) only;
    and read_xtc of the leading atoms on all cores.
Whole-frame readers must give MDAnalysis' positions (their sums are compared). Prints the file
used, a table (frames/s, best of --repeat runs each), the ratios against MDAnalysis measured in
the same run, and the load average before and after.

Usage: bench/xtc_bench.py [--build-dir build/release] [--mummi build/release/deploy/mummi]
                          [--gmx gmx] [--threads 2] [--regenerate] [--cache-dir DIR]
                          [--synthetic [--frames 200] [--precision 100] [--keep FILE]]
                          [--file FILE] [--leading N] [--repeat 3]
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

with warnings.catch_warnings():
    # MDAnalysis 2.4 imports xdrlib, deprecated in Python 3.11, and turns that warning back on.
    warnings.simplefilter("ignore")
    import xdrlib  # noqa: F401
import MDAnalysis as mda  # noqa: E402
from MDAnalysis.lib.formats.libmdaxdr import XTCFile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "data", "demo")

# The realistic system: what `mummi createsims` builds from this recipe.
CAMPAIGN_YAML = """\
# Written by bench/xtc_bench.py: the demo force field in a mini-MuMMI-sized box.
system:
  files: [{forcefield}, {solvent}, {lipids}, {protein_itp}]
  protein:
    molecule: DPR
    structure: {protein_gro}
  membrane:
    box_nm: [20, 20, 15]
    upper: {{DPC: 0.7, DST: 0.3}}
    lower: {{DPC: 0.5, DPS: 0.3, DST: 0.2}}
"""
REALISTIC_NAME = "demo_membrane_20x20x15_nstxout5_1000steps"
REALISTIC_FRAME_STEPS = 5
REALISTIC_STEPS = 1000

# The synthetic trajectory.
N_BEADS = 49_584
N_PROTEIN = 763
N_LIPIDS = 2_500
LIPID_BEADS = 12
BOX_NM = np.array([20.0, 20.0, 15.0])


def initial_positions(rng):
    protein = np.cumsum(rng.normal(0.0, 0.2, size=(N_PROTEIN, 3)), axis=0)
    protein += np.array([10.0, 10.0, 11.5]) - protein.mean(axis=0)
    leaflet = np.where(np.arange(N_LIPIDS) % 2 == 0, 1.0, -1.0)
    heads = np.column_stack([rng.uniform(0, BOX_NM[0], N_LIPIDS),
                             rng.uniform(0, BOX_NM[1], N_LIPIDS),
                             7.5 + 2.2 * leaflet])
    lipids = np.repeat(heads[:, None, :], LIPID_BEADS, axis=1)
    depth = np.arange(LIPID_BEADS) * 0.47 * 0.4
    lipids[:, :, 2] -= leaflet[:, None] * depth[None, :]
    lipids += rng.normal(0.0, 0.12, size=lipids.shape)
    n_solvent = N_BEADS - N_PROTEIN - N_LIPIDS * LIPID_BEADS
    z = np.concatenate([rng.uniform(0.0, 4.8, n_solvent // 2),
                        rng.uniform(10.2, 15.0, n_solvent - n_solvent // 2)])
    solvent = np.column_stack([rng.uniform(0, BOX_NM[0], n_solvent),
                               rng.uniform(0, BOX_NM[1], n_solvent), z])
    return np.concatenate([protein, lipids.reshape(-1, 3), solvent])


def build_synthetic(path, frames, precision, seed=2024):
    rng = np.random.default_rng(seed)
    reference = initial_positions(rng)
    n_solvent = N_BEADS - N_PROTEIN - N_LIPIDS * LIPID_BEADS
    molecule = np.concatenate([np.zeros(N_PROTEIN, dtype=int),
                               1 + np.repeat(np.arange(N_LIPIDS), LIPID_BEADS),
                               1 + N_LIPIDS + np.arange(n_solvent)])
    shift = np.zeros((molecule[-1] + 1, 3))
    box = np.diag(BOX_NM).astype(np.float32)
    with XTCFile(path, "w") as f:
        for k in range(frames):
            x = reference + shift[molecule] + rng.normal(0.0, 0.03, size=reference.shape)
            f.write(np.mod(x, BOX_NM).astype(np.float32), box, 25_000 * k, np.float32(500.0 * k),
                    precision)
            shift += rng.normal(0.0, 0.05, size=shift.shape)


def run_step(what, cmd, cwd):
    """Runs one generation step; on failure prints its output and exits."""
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        sys.exit(f"xtc_bench: {what} failed (exit {r.returncode}): {' '.join(cmd)}")
    print(f"  {what}: {time.perf_counter() - start:.0f} s", flush=True)
    return r.stdout


def set_mdp_key(text, key, value):
    """`text` with `key` (GROMACS spelling: '-' and '_' alike) set to `value`."""
    norm = key.replace("_", "-").lower()
    out, found = [], False
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if m and m.group(1).replace("_", "-").lower() == norm:
            if found:
                continue
            line, found = f"{key:<24} = {value}", True
        out.append(line)
    if not found:
        out.append(f"{key:<24} = {value}")
    return "\n".join(out) + "\n"


def gro_atoms(path, count):
    """(residue name, atom name) of the first `count` atoms of a .gro file."""
    with open(path) as f:
        lines = f.read().splitlines()
    return [(ln[5:10].strip(), ln[10:15].strip()) for ln in lines[2:2 + count]]


def generate_realistic(xtc, mummi, gmx, threads):
    """createsims + a short mdrun; writes `xtc` and `xtc`.json. Returns the description."""
    protein_gro = os.path.join(DEMO, "protein.gro")
    with open(protein_gro) as f:
        f.readline()
        protein_beads = int(f.readline())
    print(f"generating {xtc} (mummi createsims + gmx mdrun, a few minutes on 2 cores)",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="mummi-xtc-bench-") as tmp:
        config = os.path.join(tmp, "campaign.yaml")
        with open(config, "w") as f:
            f.write(CAMPAIGN_YAML.format(
                forcefield=json.dumps(os.path.join(DEMO, "forcefield.itp")),
                solvent=json.dumps(os.path.join(DEMO, "solvent.itp")),
                lipids=json.dumps(os.path.join(DEMO, "lipids.itp")),
                protein_itp=json.dumps(os.path.join(DEMO, "protein.itp")),
                protein_gro=json.dumps(protein_gro)))
        sim = os.path.join(tmp, "sim")
        summary = run_step("mummi createsims",
                           [mummi, "createsims", config, "--out", sim, "--threads", str(threads)],
                           tmp)
        # The protein must be the leading atoms, as in MuMMI's files.
        if gro_atoms(os.path.join(sim, "eq3.gro"), protein_beads) != gro_atoms(protein_gro,
                                                                                protein_beads):
            sys.exit(f"xtc_bench: the first {protein_beads} atoms of {sim}/eq3.gro are not the "
                     f"protein of {protein_gro}")
        with open(os.path.join(sim, "production.mdp")) as f:
            mdp = f.read()
        mdp = set_mdp_key(mdp, "nstxout-compressed", str(REALISTIC_FRAME_STEPS))
        mdp = set_mdp_key(mdp, "nsteps", str(REALISTIC_STEPS))
        with open(os.path.join(sim, "bench.mdp"), "w") as f:
            f.write(mdp)
        run_step("gmx grompp", [gmx, "grompp", "-f", "bench.mdp", "-c", "eq3.gro", "-t", "eq3.cpt",
                                "-p", "topol.top", "-n", "index.ndx", "-o", "bench.tpr"], sim)
        run_step(f"gmx mdrun ({REALISTIC_STEPS} steps)",
                 [gmx, "mdrun", "-nt", str(threads), "-deffnm", "bench"], sim)
        os.makedirs(os.path.dirname(xtc), exist_ok=True)
        shutil.copyfile(os.path.join(sim, "bench.xtc"), xtc + ".part")
        os.replace(xtc + ".part", xtc)
    version = subprocess.run([gmx, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"GROMACS version:\s*(\S+)", version)
    info = {
        "source": "mummi createsims (data/demo, 20 x 20 x 15 nm) + gmx mdrun "
                  f"{m.group(1) if m else '?'}, production.mdp with nstxout-compressed = "
                  f"{REALISTIC_FRAME_STEPS}, nsteps = {REALISTIC_STEPS}",
        "leading_atoms": protein_beads,
        "createsims": "\n".join(line for line in summary.strip().splitlines()
                                if "production input" not in line),  # a deleted temp dir
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    with open(xtc + ".json", "w") as f:
        json.dump(info, f, indent=1)
    return info


def describe(path):
    """(atoms, frames, precision, step of the first and last frame) of an XTC file."""
    with XTCFile(path) as f:
        frames = len(f)
        first = f.read()
        f.seek(frames - 1)
        last = f.read()
        return f.n_atoms, frames, float(first.prec), int(first.step), int(last.step)


def time_mdanalysis(path, natoms, repeat):
    """(frames/s, frames, sum of every position) for MDAnalysis."""
    best, frames, checksum = float("inf"), 0, 0.0
    for _ in range(repeat):
        u = mda.Universe.empty(natoms, trajectory=False)
        u.load_new(path, format="XTC")  # builds (or loads) the frame offsets, not timed
        start = time.perf_counter()
        total, n = 0.0, 0
        for ts in u.trajectory:
            total += float(ts.positions.sum(dtype=np.float64))
            n += 1
        best = min(best, time.perf_counter() - start)
        frames, checksum = n, total
    return frames / best, frames, checksum


def time_cpp(binary, path, repeat, mode, threads, leading):
    out = subprocess.run([binary, "--file", path, "--mode", mode, "--threads", str(threads),
                          "--leading", str(leading), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["frames_per_s"], r["frames"], r["checksum"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"),
                    help="build holding bench/xtc_bench")
    ap.add_argument("--mummi", default=os.path.join(REPO, "build", "release", "deploy", "mummi"),
                    help="mummi binary that builds the realistic system")
    ap.add_argument("--gmx", default="gmx", help="GROMACS binary")
    ap.add_argument("--threads", type=int, default=2, help="mdrun threads while generating")
    ap.add_argument("--cache-dir", default=os.path.join(REPO, "build", "bench-data"))
    ap.add_argument("--regenerate", action="store_true", help="make the realistic XTC again")
    ap.add_argument("--synthetic", action="store_true",
                    help="time the synthetic MDAnalysis-written trajectory instead")
    ap.add_argument("--frames", type=int, default=200, help="synthetic: frames")
    ap.add_argument("--precision", type=float, default=100.0, help="synthetic: precision")
    ap.add_argument("--keep", help="synthetic: write the trajectory here and keep it")
    ap.add_argument("--file", help="time this XTC file instead")
    ap.add_argument("--leading", type=int,
                    help="atoms of the leading-atoms rows (default: the protein's, 127 for the "
                         "realistic file, 763 for the synthetic one)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.synthetic and a.file:
        sys.exit("xtc_bench: --synthetic and --file exclude each other")
    binary = os.path.join(a.build_dir, "bench", "xtc_bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: cmake --build {a.build_dir} --target xtc_bench -j1")
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="mummi-xtc-bench-") as tmp:
        if a.file:
            path, source, leading = a.file, "given file", a.leading or 0
        elif a.synthetic:
            path = a.keep or os.path.join(tmp, "synthetic.xtc")
            start = time.perf_counter()
            build_synthetic(path, a.frames, a.precision)
            source = (f"synthetic (MDAnalysis writer, random walks; written in "
                      f"{time.perf_counter() - start:.1f} s)")
            leading = a.leading if a.leading is not None else N_PROTEIN
        else:
            path = os.path.join(a.cache_dir, REALISTIC_NAME + ".xtc")
            if a.regenerate or not os.path.exists(path) or not os.path.exists(path + ".json"):
                if not os.path.exists(a.mummi):
                    sys.exit(f"{a.mummi} not found: cmake --build "
                             f"{os.path.dirname(os.path.dirname(a.mummi))} --target mummi -j1")
                info = generate_realistic(path, a.mummi, a.gmx, a.threads)
            else:
                with open(path + ".json") as f:
                    info = json.load(f)
            source = f"realistic: {info['source']}"
            leading = a.leading if a.leading is not None else info["leading_atoms"]

        natoms, frames, precision, first_step, last_step = describe(path)
        size = os.path.getsize(path)
        cores = os.cpu_count() or 1
        print(f"trajectory: {path}\n  {source}\n  {natoms} beads x {frames} frames (steps "
              f"{first_step}-{last_step}), precision {precision:g}, {size / frames:,.0f} "
              f"bytes/frame ({size / frames / natoms:.2f} per bead); leading atoms {leading}; "
              f"{cores} cores", flush=True)

        rows = []
        mda_fps, n, mda_sum = time_mdanalysis(path, natoms, a.repeat)
        rows.append(("MDAnalysis 2.4 Universe, all atoms", mda_fps, n))
        cases = [("mummi read_xtc, all atoms, 1 thread", "whole", 1, 0),
                 (f"mummi read_xtc, all atoms, {cores} threads", "whole", 0, 0),
                 ("mummi stream reader, all atoms, 1 thread", "stream", 1, 0)]
        if leading > 0:
            cases += [(f"mummi stream reader, leading {leading} atoms", "stream", 1, leading),
                      (f"mummi read_xtc, leading {leading} atoms, {cores} threads", "whole", 0,
                       leading)]
        for label, mode, threads, lead in cases:
            fps, n, cpp_sum = time_cpp(binary, path, a.repeat, mode, threads, lead)
            # Whole frames: the same positions as MDAnalysis, which gives them in Angstrom
            # (scaled in float32 and summed in another order, hence the tolerance; a misread
            # frame is far off; tests/md_bridge/xtc_mdrun_test.cpp checks them bit for bit).
            if lead == 0 and (n != frames or abs(cpp_sum - mda_sum / 10) > 1e-7 * abs(cpp_sum)):
                sys.exit(f"xtc_bench: {label} read {n} frames summing to {cpp_sum:.9e} nm; "
                         f"MDAnalysis {frames} frames summing to {mda_sum / 10:.9e} nm")
            rows.append((label, fps, n))

    print(f"\n{'reader':<48} {'frames':>7} {'frames/s':>10} {'vs MDAnalysis':>14}")
    for label, fps, n in rows:
        print(f"{label:<48} {n:>7} {fps:>10.1f} {fps / mda_fps:>13.2f}x")
    load_after = os.getloadavg()
    print("\nload average (1/5/15 min): before " + " ".join(f"{x:.2f}" for x in load_before) +
          ", after " + " ".join(f"{x:.2f}" for x in load_after))


if __name__ == "__main__":
    main()
