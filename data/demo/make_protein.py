#!/usr/bin/python3
"""Writes the mummi demo protein (NOT Martini): protein.itp, protein.gro and protein.ndx.

A two-domain coarse-grained protein of 127 beads, made for mummi's tests and demo:

  TAIL    4 apolar beads (T4..T1), a lipid-like anchor that sits in the membrane's upper
          leaflet, joined by a polar connector bead (ANC) to
  DOM1    a 4 x 4 x 4 lattice domain (64 beads, apolar core, polar surface, net charge 0)
          held by an elastic network, then
  LINKER  10 flexible polar beads, then
  DOM2    a 3 x 4 x 4 lattice domain (48 beads) with four positive beads on one face
          (net charge +4), held by its own elastic network.

DOM2 plays the part of KRAS-RBDCRD's CRD: its distance from the membrane separates state A
(close) from state B (far). protein.gro is a state-A conformation: the linker arches over so
that DOM2 sits beside DOM1 with its positive face down, the membrane normal along z and the
lowest tail bead (the anchor bead, atom 1) at the origin.
Deterministic: running the script again writes identical files.
"""
import itertools
import math
import pathlib

LATTICE_NM = 0.47      # bead spacing inside a domain
LINK_NM = 0.38         # bead spacing along the linker
EN_CUTOFF_NM = 0.70    # elastic network: nearest and face-diagonal neighbours
EN_K = 1000.0          # kJ/mol/nm^2
BOND_K = 1250.0
POSRES_K = 1000.0


def serpentine(nx, ny, nz):
    """Lattice indices visited so that consecutive sites are nearest neighbours."""
    order = []
    for k in range(nz):
        rows = range(ny) if k % 2 == 0 else reversed(range(ny))
        for n, j in enumerate(rows):
            cols = range(nx) if (n + k * ny) % 2 == 0 else reversed(range(nx))
            order.extend((i, j, k) for i in cols)
    return order


def domain(nx, ny, nz, origin, positive_face=False, charges_d1=False, top_down=False):
    """A lattice domain; with top_down the layers are stacked downwards from origin."""
    beads = []
    for (i, j, k) in serpentine(nx, ny, nz):
        interior = 0 < i < nx - 1 and 0 < j < ny - 1 and 0 < k < nz - 1
        btype, res, q = ("C", "APO", 0.0) if interior else ("P", "POL", 0.0)
        if positive_face and k == nz - 1 and i in (0, nx - 1) and 0 < j < ny - 1:
            btype, res, q = "Q", "LYS", 1.0
        if charges_d1 and k == nz - 1 and (i, j) in ((0, 0), (nx - 1, ny - 1)):
            btype, res, q = "Q", "LYS", 1.0
        if charges_d1 and k == nz - 1 and (i, j) in ((0, ny - 1), (nx - 1, 0)):
            btype, res, q = "Q", "ASP", -1.0
        pos = (origin[0] + i * LATTICE_NM, origin[1] + j * LATTICE_NM,
               origin[2] + (-k if top_down else k) * LATTICE_NM)
        beads.append(dict(type=btype, res=res, name="BB", charge=q, pos=pos))
    return beads


def dist(a, b):
    return math.dist(a["pos"], b["pos"])


def build():
    beads, bonds, angles, exclusions, groups = [], [], [], [], {}

    def add(group, new):
        start = len(beads)
        beads.extend(new)
        groups[group] = list(range(start + 1, len(beads) + 1))
        return start

    x0 = y0 = 0.0
    tail = [dict(type="C", res="TAIL", name=f"T{4 - n}", charge=0.0,
                 pos=(x0, y0, n * 0.47)) for n in range(4)]
    anc = [dict(type="P", res="ANC", name="ANC", charge=0.0, pos=(x0, y0, 4 * 0.47))]
    t = add("ANCHOR", tail + anc)
    d1_origin = (x0, y0, 5 * 0.47)
    d1 = add("DOM1", domain(4, 4, 4, d1_origin, charges_d1=True))
    # The linker rises two beads, crosses six towards +x and comes down two.
    x, y, z = beads[-1]["pos"]
    path = []
    for dx, dz in [(0, 1)] * 2 + [(1, 0)] * 6 + [(0, -1)] * 2:
        x, z = x + dx * LINK_NM, z + dz * LINK_NM
        path.append((x, y, z))
    linker = [dict(type="P", res="LNK", name="BB", charge=0.0, pos=p) for p in path]
    lk = add("LINKER", linker)
    end = beads[-1]["pos"]
    d2 = add("DOM2", domain(3, 4, 4, (end[0], end[1] - 3 * LATTICE_NM if end[1] > 0 else end[1],
                                      end[2] - LATTICE_NM),
                            positive_face=True, top_down=True))
    n = len(beads)

    # Chain bonds along the whole molecule (anchor, domains, linker: consecutive beads).
    for a in range(n - 1):
        bonds.append((a, a + 1, round(dist(beads[a], beads[a + 1]), 3), BOND_K, "chain"))
    # Elastic networks inside each domain, those pairs also excluded from non-bonded terms.
    for start, size in ((d1, 64), (d2, 48)):
        for a, b in itertools.combinations(range(start, start + size), 2):
            if b == a + 1:
                continue
            d = dist(beads[a], beads[b])
            if d <= EN_CUTOFF_NM:
                bonds.append((a, b, round(d, 3), EN_K, "elastic"))
                exclusions.append((a, b))
    # Straight tail, stiff connector, weak linker angles (the linker is what makes A and B).
    for a in range(t, t + 4):
        angles.append((a, a + 1, a + 2, 180.0, 25.0))
    for a in range(lk - 1, lk + 9):
        angles.append((a, a + 1, a + 2, 150.0, 5.0))
    return beads, bonds, angles, exclusions, groups


def write(beads, bonds, angles, exclusions, groups, out):
    q = sum(b["charge"] for b in beads)
    lines = [
        "; mummi demo protein (NOT Martini), written by data/demo/make_protein.py.",
        f"; {len(beads)} beads, net charge {q:+.0f}; groups ANCHOR, DOM1, LINKER, DOM2 as in",
        "; protein.ndx. Elastic-network pairs are bonds (function 1) and exclusions.",
        "",
        "[ moleculetype ]",
        "; name  nrexcl",
        "  DPR   1",
        "",
        "[ atoms ]",
        "; nr  type  resnr  residue  atom  cgnr  charge  mass",
    ]
    for i, b in enumerate(beads, 1):
        lines.append(f"  {i:<4d}{b['type']:<6s}{i:<7d}{b['res']:<9s}{b['name']:<6s}"
                     f"{i:<6d}{b['charge']:5.1f}   72.0")
    lines += ["", "[ bonds ]", "; i  j  func  b0(nm)  kb(kJ/mol/nm2)"]
    for kind in ("chain", "elastic"):
        if kind == "elastic":
            lines.append("; elastic network")
            lines.append("#ifndef NO_ELASTIC")
        for a, b, d, k, what in bonds:
            if what == kind:
                lines.append(f"  {a + 1:<4d}{b + 1:<4d}1  {d:.3f}  {k:.0f}")
        if kind == "elastic":
            lines.append("#endif")
    lines += ["", "[ angles ]", "; i  j  k  func  theta0(deg)  k(kJ/mol)"]
    for a, b, c, th, k in angles:
        lines.append(f"  {a + 1:<4d}{b + 1:<4d}{c + 1:<4d}2  {th:.1f}  {k:.1f}")
    lines += ["", "[ exclusions ]", "; elastic-network pairs"]
    for a, b in exclusions:
        lines.append(f"  {a + 1:<4d}{b + 1}")
    lines += ["", "#ifdef POSRES", "[ position_restraints ]", "; i  func  fx  fy  fz"]
    for i in range(1, len(beads) + 1):
        lines.append(f"  {i:<4d}1  {POSRES_K:.0f}  {POSRES_K:.0f}  {POSRES_K:.0f}")
    lines += ["#endif", ""]
    (out / "protein.itp").write_text("\n".join(lines))

    lo = [min(b["pos"][d] for b in beads) for d in range(3)]
    hi = [max(b["pos"][d] for b in beads) for d in range(3)]
    gro = ["mummi demo protein DPR (NOT Martini), state A conformation", f"{len(beads):5d}"]
    for i, b in enumerate(beads, 1):
        x, y, z = b["pos"]
        gro.append(f"{i:5d}{b['res']:<5s}{b['name']:>5s}{i:5d}{x:8.3f}{y:8.3f}{z:8.3f}")
    gro.append("".join(f"{hi[d] - lo[d] + 2.0:10.5f}" for d in range(3)))
    (out / "protein.gro").write_text("\n".join(gro) + "\n")

    ndx = []
    for name, idx in groups.items():
        ndx.append(f"[ {name} ]")
        for s in range(0, len(idx), 15):
            ndx.append(" ".join(f"{i:4d}" for i in idx[s:s + 15]))
    (out / "protein.ndx").write_text("\n".join(ndx) + "\n")


if __name__ == "__main__":
    write(*build(), pathlib.Path(__file__).resolve().parent)
