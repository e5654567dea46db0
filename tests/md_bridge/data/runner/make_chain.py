#!/usr/bin/python3
"""Writes the runner/validator test chain: chain.top (own force field) and chain.gro.

A 750-bead coarse-grained chain (NOT a real protein, NOT Martini): apolar (A) and polar (P)
beads with a few charged ones (Q+/Q-), harmonic bonds of 0.38 nm, cosine-harmonic angles
of 120 degrees, packed as a compact self-avoiding walk inside a sphere of radius 3.2 nm,
so that no two non-bonded beads are closer than 0.45 nm. Deterministic (fixed seed).
"""
import math
import pathlib
import random

N = 750
BOND_NM = 0.38
MIN_NONBONDED_NM = 0.45
SPHERE_NM = 3.2
BOX_NM = 12.0

FORCEFIELD = """\
; runner test force field (NOT Martini): made for mummi's runner and validator tests.
[ defaults ]
; nbfunc  comb-rule  gen-pairs  fudgeLJ  fudgeQQ
  1       2          no         1.0      1.0

[ atomtypes ]
; name  mass  charge  ptype  sigma(nm)  epsilon(kJ/mol)
  A     72.0  0.000   A      0.470      3.50
  P     72.0  0.000   A      0.470      4.50
  Q     72.0  0.000   A      0.470      4.00

[ nonbond_params ]
; i  j  func  sigma(nm)  epsilon(kJ/mol)
  A  P  1     0.470      2.30
  A  Q  1     0.470      2.00
  P  Q  1     0.470      4.50
"""


def walk(rng):
    pos = [(0.0, 0.0, 0.0)]
    while len(pos) < N:
        last = pos[-1]
        for _ in range(2000):
            # Uniform direction, biased towards the sphere's centre when near its surface.
            z = rng.uniform(-1, 1)
            phi = rng.uniform(0, 2 * math.pi)
            s = math.sqrt(1 - z * z)
            d = (s * math.cos(phi), s * math.sin(phi), z)
            p = tuple(last[k] + BOND_NM * d[k] for k in range(3))
            if math.dist(p, (0, 0, 0)) > SPHERE_NM:
                continue
            if len(pos) >= 2:
                a = [pos[-2][k] - last[k] for k in range(3)]
                b = [p[k] - last[k] for k in range(3)]
                cos = sum(a[k] * b[k] for k in range(3)) / (BOND_NM * BOND_NM)
                if cos > math.cos(math.radians(85)):
                    continue
            if all(math.dist(p, q) >= MIN_NONBONDED_NM for q in pos[:-1]):
                pos.append(p)
                break
        else:
            # Dead end: step back a few beads and try again.
            del pos[max(1, len(pos) - 10):]
    return pos


def main():
    rng = random.Random(20240611)
    pos = walk(rng)
    types = []
    for i in range(N):
        if i % 37 == 5:
            types.append(("Q", 1.0))
        elif i % 37 == 23:
            types.append(("Q", -1.0))
        elif i % 3 == 0:
            types.append(("P", 0.0))
        else:
            types.append(("A", 0.0))
    out = pathlib.Path(__file__).resolve().parent
    top = [FORCEFIELD, "[ moleculetype ]", "; name  nrexcl", "  CHAIN  1", "", "[ atoms ]",
           "; nr  type  resnr  residue  atom  cgnr  charge  mass"]
    for i, (t, q) in enumerate(types):
        top.append(f"  {i + 1}  {t}  {i + 1}  RES  B{t}  {i + 1}  {q:.1f}  72.0")
    top += ["", "[ bonds ]", "; i  j  func  b0(nm)  k(kJ/mol/nm^2)"]
    top += [f"  {i + 1}  {i + 2}  1  {BOND_NM:.2f}  1250.0" for i in range(N - 1)]
    top += ["", "[ angles ]", "; i  j  k  func  theta0(deg)  k(kJ/mol)"]
    top += [f"  {i + 1}  {i + 2}  {i + 3}  2  120.0  25.0" for i in range(N - 2)]
    top += ["", "#ifdef POSRES", "[ position_restraints ]", "; i  func  fx  fy  fz"]
    top += [f"  {i + 1}  1  1000  1000  1000" for i in range(N)]
    top += ["#endif", "", "[ system ]", "runner test chain", "", "[ molecules ]", "CHAIN  1", ""]
    (out / "chain.top").write_text("\n".join(top))
    c = BOX_NM / 2
    gro = ["runner test chain (NOT a real protein)", f"{N:5d}"]
    for i, ((t, _), p) in enumerate(zip(types, pos)):
        x, y, z = (p[k] + c for k in range(3))
        gro.append(f"{(i + 1) % 100000:5d}{'RES':<5s}{'B' + t:>5s}{(i + 1) % 100000:5d}"
                   f"{x:8.3f}{y:8.3f}{z:8.3f}")
    gro.append(f"{BOX_NM:10.5f}{BOX_NM:10.5f}{BOX_NM:10.5f}")
    (out / "chain.gro").write_text("\n".join(gro) + "\n")


if __name__ == "__main__":
    main()
