#!/usr/bin/python3
"""XTC reading throughput: MDAnalysis 2.4 against mummi::md's own decoder, side by side.

Builds (with MDAnalysis' XTC writer, the same compression GROMACS uses) a membrane-like
trajectory of 49,584 beads in a 20 x 20 x 15 nm box: a 763-bead protein-like chain first,
then 2,500 lipids of 12 beads in two leaflets, then solvent beads. Molecules move as random walks
in time, their beads jitter around the molecule's shape, and every bead is wrapped into the box
(as mdrun writes them). Default: 200 frames at precision 100 (as MuMMI's
coarse-grained runs write; GROMACS' default is 1000, see --precision).

Then times, on the same file:
  * MDAnalysis: a Universe iterating over all frames, summing the positions of each,
  * xtc_bench (C++): read_xtc whole frames on one thread and on all cores (every frame kept in
    memory, a fresh buffer each); xtc_stream_reader frame by frame reusing one buffer (as an
    in-situ analysis and MDAnalysis do), whole frames and the leading 763 atoms only; and
    read_xtc of the leading 763 atoms on all cores.
Prints a table (frames/s, best of --repeat runs each) and the ratios against MDAnalysis.

Usage: bench/xtc_bench.py [--build-dir build/release] [--frames 200] [--precision 100]
                          [--repeat 3] [--keep FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import MDAnalysis as mda  # noqa: E402
from MDAnalysis.lib.formats.libmdaxdr import XTCFile  # noqa: E402

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


def build(path, frames, precision, seed=2024):
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


def time_mdanalysis(path, repeat):
    best, frames = float("inf"), 0
    for _ in range(repeat):
        u = mda.Universe.empty(N_BEADS, trajectory=False)
        u.load_new(path, format="XTC")  # builds (or loads) the frame offsets, not timed
        start = time.perf_counter()
        total, n = 0.0, 0
        for ts in u.trajectory:
            total += float(ts.positions.sum(dtype=np.float64))
            n += 1
        best = min(best, time.perf_counter() - start)
        frames = n
    return frames / best, frames


def time_cpp(binary, path, repeat, mode, threads, leading):
    out = subprocess.run([binary, "--file", path, "--mode", mode, "--threads", str(threads),
                          "--leading", str(leading), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["frames_per_s"], r["frames"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--precision", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="write the trajectory here and keep it")
    a = ap.parse_args()
    binary = os.path.join(a.build_dir, "bench", "xtc_bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: cmake --build {a.build_dir} --target xtc_bench")
    with tempfile.TemporaryDirectory(prefix="mummi-xtc-bench-") as tmp:
        path = a.keep or os.path.join(tmp, "membrane.xtc")
        start = time.perf_counter()
        build(path, a.frames, a.precision)
        size = os.path.getsize(path)
        print(f"trajectory: {N_BEADS} beads x {a.frames} frames, precision {a.precision:g}, "
              f"{size / a.frames / 1000:.0f} kB/frame (written in "
              f"{time.perf_counter() - start:.1f} s); {os.cpu_count()} cores")
        cores = os.cpu_count() or 1
        rows = []
        mda_fps, n = time_mdanalysis(path, a.repeat)
        rows.append(("MDAnalysis 2.4 Universe, all atoms", mda_fps, n))
        for label, mode, threads, leading in [
                ("mummi read_xtc, all atoms, 1 thread", "whole", 1, 0),
                (f"mummi read_xtc, all atoms, {cores} threads", "whole", 0, 0),
                ("mummi stream reader, all atoms, 1 thread", "stream", 1, 0),
                (f"mummi stream reader, leading {N_PROTEIN} atoms", "stream", 1, N_PROTEIN),
                (f"mummi read_xtc, leading {N_PROTEIN} atoms, {cores} threads", "whole", 0,
                 N_PROTEIN)]:
            fps, n = time_cpp(binary, path, a.repeat, mode, threads, leading)
            rows.append((label, fps, n))
    print(f"\n{'reader':<48} {'frames':>7} {'frames/s':>10} {'vs MDAnalysis':>14}")
    for label, fps, n in rows:
        print(f"{label:<48} {n:>7} {fps:>10.1f} {fps / mda_fps:>13.2f}x")


if __name__ == "__main__":
    main()
