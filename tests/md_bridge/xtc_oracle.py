#!/usr/bin/python3
"""MDAnalysis as the oracle of the XTC reader tests (run with /usr/bin/python3).

  xtc_oracle.py dump TRAJ.xtc OUT.bin
      Reads every frame twice with MDAnalysis 2.4: with its XTC file class
      (MDAnalysis.lib.formats.libmdaxdr.XTCFile, the decoder under MDAnalysis' XTC reader,
      which returns nm) and with a Universe (positions in Angstrom, as analyses see them).
      Writes, little-endian:
        b"XTCDUMP1", int32 n_frames, int32 n_atoms, then per frame
        int64 step, float32 time_ps, float32 precision, float32 box_nm[3][3],
        float32 x_nm[n_atoms][3] (XTCFile), float32 x_angstrom[n_atoms][3] (Universe).

  xtc_oracle.py write TRAJ.xtc --atoms N --frames F --precision P --kind KIND --seed S
      Writes a trajectory with MDAnalysis' XTC writer (the same compression as GROMACS).
      KIND: uniform (random points in a 7 nm box), walk (chains of 0.1-0.5 nm steps, so most
      atoms are coded as small displacements), water (O-H-H triplets), wide (coordinates up
      to 4,000 nm: a packed triplet of more than 64 bits), huge (up to 20,000 nm at precision
      1000: ranges above 2^24, three separate integers).
"""

import argparse
import struct
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import MDAnalysis as mda  # noqa: E402
from MDAnalysis.lib.formats.libmdaxdr import XTCFile  # noqa: E402


def dump(path, out):
    frames = []
    with XTCFile(path) as f:
        for frame in f:
            frames.append((int(frame.step), np.float32(frame.time), np.float32(frame.prec),
                           np.asarray(frame.box, dtype=np.float32).copy(),
                           np.asarray(frame.x, dtype=np.float32).copy()))
    natoms = frames[0][4].shape[0] if frames else 0
    u = mda.Universe.empty(natoms, trajectory=False)
    u.load_new(path, format="XTC")
    if len(u.trajectory) != len(frames):
        sys.exit(f"Universe sees {len(u.trajectory)} frames, XTCFile {len(frames)}")
    with open(out, "wb") as o:
        o.write(b"XTCDUMP1")
        o.write(struct.pack("<ii", len(frames), natoms))
        for (step, time, prec, box, x), ts in zip(frames, u.trajectory):
            o.write(struct.pack("<q", step))
            o.write(np.array([time, prec], dtype="<f4").tobytes())
            o.write(box.astype("<f4").tobytes())
            o.write(x.astype("<f4").tobytes())
            o.write(np.asarray(ts.positions, dtype="<f4").tobytes())


def coordinates(kind, natoms, nframes, rng):
    if kind == "uniform":
        return rng.uniform(0.0, 7.0, size=(nframes, natoms, 3))
    if kind == "walk":
        steps = rng.normal(0.0, 0.15, size=(nframes, natoms, 3))
        steps[:, ::25] += rng.uniform(-3.0, 3.0, size=steps[:, ::25].shape)  # chain breaks
        return 3.5 + np.cumsum(steps, axis=1)
    if kind == "water":
        centres = rng.uniform(0.0, 7.0, size=(nframes, (natoms + 2) // 3, 1, 3))
        bonds = rng.normal(0.0, 0.06, size=(nframes, centres.shape[1], 3, 3))
        bonds[:, :, 0, :] = 0.0
        return (centres + bonds).reshape(nframes, -1, 3)[:, :natoms]
    if kind == "wide":
        return rng.uniform(-2000.0, 2000.0, size=(nframes, natoms, 3))
    if kind == "huge":
        return rng.uniform(-10000.0, 10000.0, size=(nframes, natoms, 3))
    sys.exit(f"unknown kind {kind}")


def write(path, natoms, nframes, precision, kind, seed):
    rng = np.random.default_rng(seed)
    xyz = coordinates(kind, natoms, nframes, rng).astype(np.float32)
    box = np.diag([7.0, 7.5, 8.0]).astype(np.float32)
    with XTCFile(path, "w") as f:
        for k in range(nframes):
            f.write(xyz[k], box, 100 * k + 5, np.float32(0.25 * k), precision)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("xtc")
    d.add_argument("out")
    w = sub.add_parser("write")
    w.add_argument("xtc")
    w.add_argument("--atoms", type=int, required=True)
    w.add_argument("--frames", type=int, default=5)
    w.add_argument("--precision", type=float, default=1000.0)
    w.add_argument("--kind", default="uniform")
    w.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.command == "dump":
        dump(a.xtc, a.out)
    else:
        write(a.xtc, a.atoms, a.frames, a.precision, a.kind, a.seed)


if __name__ == "__main__":
    main()
