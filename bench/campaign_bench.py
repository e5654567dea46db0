#!/usr/bin/python3
"""campaign_bench: the demo campaign's start-up and occupancy.

Runs `mummi run` on a campaign configuration (default: examples/demo/campaign.yaml with the
campaign directory moved to a temporary one) and measures, from outside:

- time to the first production MD step: from starting `mummi run` until the first
  simulation's md.log (sims/*/simulation/production.log) reports a step (goal < 60 s;
  mini-MuMMI needed minutes of ML start-up and ~10 min of createsims);
- the share of the configured cores busy after ramp-up, from the first production step until
  the last simulation started (after that the campaign drains towards its stopping point and
  cores go idle by design) (goal >= 95%), two ways: as placed (the mean of busy/total over the
  status lines `mummi run` prints every 2 s) and as used (the machine's CPU time from
  /proc/stat over the same window, all processes: this machine runs nothing else).

Usage: bench/campaign_bench.py [--mummi build/release/deploy/mummi] [--config FILE] [--runs 1]
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STATUS = re.compile(r"^\[\s*([\d.]+) s\] (\S+).*simulations (\d+) queued, (\d+) running, (\d+) "
                    r"done .* cores busy (\d+)/(\d+) on")


def cpu_sample():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def first_step_seconds(campaign_dir, started, stop):
    """Seconds from `started` until a production log shows a step (polls the files)."""
    while not stop.is_set():
        for log in glob.glob(os.path.join(campaign_dir, "sims", "*", "simulation",
                                          "production.log")):
            with open(log, errors="replace") as f:
                if re.search(r"^\s+Step\s+Time", f.read(), re.M):
                    return time.monotonic() - started
        time.sleep(0.05)
    return None


def run_once(mummi, config_text, workdir):
    campaign_dir = os.path.join(workdir, "campaign")
    config = os.path.join(workdir, "campaign.yaml")
    with open(config, "w") as f:
        f.write(re.sub(r"(?m)^(\s*dir:).*$", r"\1 " + campaign_dir, config_text))
    started = time.monotonic()
    proc = subprocess.Popen([mummi, "run", config], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    stop = threading.Event()
    result = {}
    watcher = threading.Thread(target=lambda: result.update(
        first=first_step_seconds(campaign_dir, started, stop)))
    watcher.start()
    cpu = []  # (t, busy jiffies, total jiffies)

    def sample_cpu():
        while not stop.is_set():
            cpu.append((time.monotonic() - started, *cpu_sample()))
            time.sleep(0.5)
    sampler = threading.Thread(target=sample_cpu)
    sampler.start()
    lines = []
    for line in proc.stdout:
        lines.append((time.monotonic() - started, line.rstrip()))
    proc.wait()
    stop.set()
    watcher.join()
    sampler.join()
    first = result.get("first")
    samples = []  # (t, busy, total, sims_queued, sims_running, sims_done)
    for t, line in lines:
        m = STATUS.match(line)
        if m:
            samples.append((t, int(m.group(6)), int(m.group(7)), int(m.group(3)),
                            int(m.group(4)), int(m.group(5))))
    # Ramp-up ends at the first production step; occupancy counts until the campaign stops
    # starting work (from then on it drains towards its stopping point).
    window = [s for s in samples if first is not None and s[0] >= first]
    total_sims = max((s[5] for s in samples), default=0)
    last_start = None
    for s in window:
        if s[4] + s[5] < total_sims:  # not every simulation started yet
            last_start = s[0]
    busy = [s for s in window if last_start is not None and s[0] <= last_start and s[2] > 0]
    share = sum(s[1] / s[2] for s in busy) / len(busy) if busy else None
    used = None
    if busy:
        inside = [c for c in cpu if first <= c[0] <= last_start]
        if len(inside) >= 2:
            used = (inside[-1][1] - inside[0][1]) / (inside[-1][2] - inside[0][2])
    wall = time.monotonic() - started
    return {"rc": proc.returncode, "first_step_s": first, "occupancy": share, "cpu": used,
            "samples": len(busy), "wall_s": wall, "simulations": total_sims,
            "last": lines[-1][1] if lines else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mummi", default=os.path.join(ROOT, "build", "release", "deploy", "mummi"))
    ap.add_argument("--config", default=os.path.join(ROOT, "examples", "demo", "campaign.yaml"))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    with open(args.config) as f:
        text = f.read()
    print(f"campaign_bench: {args.config}, {os.cpu_count()} hardware threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'run':>3} {'rc':>3} {'first MD step s':>16} {'cores busy (placed)':>20} "
          f"{'CPU busy (used)':>16} {'samples':>8} {'simulations':>12} {'wall s':>8}")
    for i in range(args.runs):
        work = tempfile.mkdtemp(prefix="mummi-campaign-bench-")
        try:
            r = run_once(args.mummi, text, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        first = f"{r['first_step_s']:.1f}" if r["first_step_s"] is not None else "-"
        occ = f"{100 * r['occupancy']:.1f}%" if r["occupancy"] is not None else "-"
        used = f"{100 * r['cpu']:.1f}%" if r["cpu"] is not None else "-"
        print(f"{i + 1:>3} {r['rc']:>3} {first:>16} {occ:>20} {used:>16} {r['samples']:>8} "
              f"{r['simulations']:>12} {r['wall_s']:>8.1f}")
    print("goals: first production MD step < 60 s; cores busy after ramp-up >= 95%")


if __name__ == "__main__":
    main()
