#!/usr/bin/python3
"""The importance sampler's selection against a dynim-style baseline (numpy + faiss).

Baseline: index the selected points in a faiss IndexFlatL2, search the k = 10 nearest for every
candidate, rank = mean L2 distance, take the top batch. mummi (bench/importance_bench, C++):
the incremental k-nearest index, built from scratch on the same data, then the steady-state
batch (rank, take the top batch, take it into every other candidate's neighbour list).

Usage: importance_bench.py [--bench build/release/bench/importance_bench] [--sizes 1000000,35000]
"""

import argparse
import os
import subprocess
import tempfile
import time

import faiss
import numpy as np

DIMS = 32
SELECTED = 5000
BATCH = 100
K = 10


def baseline_top(cand, sel, batch):
    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(cand.shape[1])
    index.add(sel)
    dist, _ = index.search(cand, K)
    ranks = np.sqrt(np.maximum(dist, 0)).mean(axis=1)
    top = np.argpartition(-ranks, batch)[:batch]
    top = top[np.argsort(-ranks[top], kind="stable")]
    return top, ranks, time.perf_counter() - t0


def run(bench, n, rounds, verify_second, tmp):
    rng = np.random.default_rng(20240611 + n)
    cand = rng.standard_normal((n, DIMS), dtype=np.float32)
    sel = rng.standard_normal((SELECTED, DIMS), dtype=np.float32)
    cand.tofile(os.path.join(tmp, "candidates.f32"))
    sel.tofile(os.path.join(tmp, "selected.f32"))

    top1, ranks1, base_s = baseline_top(cand, sel, BATCH)

    out = subprocess.run([bench, tmp, str(n), str(DIMS), str(SELECTED), str(BATCH), str(rounds)],
                         check=True, capture_output=True, text=True).stdout
    res = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}

    def mummi_top(r):
        with open(os.path.join(tmp, f"mummi_top_{r}.txt")) as f:
            return [int(x) for x in f.read().split()]

    m1 = mummi_top(1)
    overlap1 = len(set(m1) & set(top1.tolist()))
    # Rank gap at the boundary: how far the differing candidates' baseline ranks are apart.
    diff = set(m1) ^ set(top1.tolist())
    gap = max((abs(ranks1[i] - ranks1[top1[-1]]) for i in diff), default=0.0)
    overlap2 = None
    if verify_second:
        keep = np.setdiff1d(np.arange(n), np.array(m1))
        sel2 = np.concatenate([sel, cand[m1]])
        top2, _, _ = baseline_top(cand[keep], sel2, BATCH)
        overlap2 = len(set(mummi_top(2)) & set(keep[top2].tolist()))
    return base_s, res, overlap1, gap, overlap2


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(here, "..", "build", "release", "bench",
                                                    "importance_bench"))
    ap.add_argument("--sizes", default="1000000,35000")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}  "
          f"faiss threads: {faiss.omp_get_max_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            rows.append((n,) + run(args.bench, n, args.rounds, True, tmp))
    print()
    print(f"{DIMS}-D, {SELECTED} selected, batch {BATCH}, k {K}")
    print("| candidates | baseline s | mummi build s | mummi batch s median (min) "
          "| build speed-up | batch speed-up median (min) | top-100 overlap r1 | r2 |")
    print("|---|---|---|---|---|---|---|---|")
    for n, base_s, res, ov1, gap, ov2 in rows:
        print(f"| {n:,} | {base_s:.3f} | {res['build_s']:.3f} | {res['batch_median_s']:.4f} "
              f"({res['batch_min_s']:.4f}) "
              f"| {base_s / res['build_s']:.1f}x | {base_s / res['batch_median_s']:.0f}x "
              f"({base_s / res['batch_min_s']:.0f}x) "
              f"| {ov1}/100 (rank gap {gap:.2e}) | {ov2}/100 |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
