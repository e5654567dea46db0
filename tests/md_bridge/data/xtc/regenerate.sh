#!/bin/sh
# Regenerates the committed trajectory of the XTC reader unit tests with GROMACS:
#   lj_fluid_short.xtc  8 frames (steps 0-70) of lj_fluid.top / lj_fluid.mdp from a 12^3
#                       lattice in a 6.5 nm box (the lattice the integration test builds too),
#   lj_fluid_short_final.gro  mdrun's final coordinates (-c), velocities stripped: GROMACS'
#                       own view of the last frame, an oracle for the decoder.
# Usage: tests/md_bridge/data/xtc/regenerate.sh   (needs gmx and python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - <<'PY'
n, box = 12, 6.5
a = box / n
lines = ["LJ fluid on a 12^3 lattice", f"{n ** 3:5d}"]
k = 0
for i in range(n):
    for j in range(n):
        for l in range(n):
            k += 1
            lines.append(f"{k % 100000:5d}{'LJB':<5s}{'LJ':>5s}{k % 100000:5d}"
                         f"{(i + 0.5) * a:8.3f}{(j + 0.5) * a:8.3f}{(l + 0.5) * a:8.3f}")
lines.append(f"{box:10.5f}{box:10.5f}{box:10.5f}")
open("conf.gro", "w").write("\n".join(lines) + "\n")
PY
sed 's/^nsteps .*/nsteps                   = 70/' "$here/lj_fluid.mdp" > short.mdp
gmx -quiet grompp -f short.mdp -c conf.gro -p "$here/lj_fluid.top" -o short.tpr >/dev/null 2>&1
gmx -quiet mdrun -nt 1 -s short.tpr -x traj.xtc -c final.gro >/dev/null 2>&1
cp traj.xtc "$here/lj_fluid_short.xtc"
# Keep residue, atom and position columns (44 characters) of the atom lines.
awk 'NR <= 2 { print; next } { if (length($0) > 44 && NF > 4) print substr($0, 1, 44); else print }' \
  final.gro > "$here/lj_fluid_short_final.gro"
