#!/usr/bin/python3
"""Autoencoder speed: mummi::ml (LibTorch, C++) against the same network in PyTorch, side by side.

Runs build/<dir>/bench/ml_bench (see bench/ml_bench.cpp) and then, for the same sizes, the same
measurements in PyTorch in a separate process (`--python`, default Debian's /usr/bin/python3
with python3-torch; works with torch 1.13 and 2.x), one size after the other:

  demo   127 beads, hidden 256, 64, latent 32
  paper  763 beads (mini-MuMMI's protein), hidden 1024, 256, latent 32

Both sides: fp32, ELU between layers, Adam (learning rate 1e-3), mean squared error.

  decode   structures/s at batch 1, 64 and 1,024. mummi: autoencoder::decode of a model
           loaded onto the device from a model file. PyTorch: under torch.no_grad(), the
           latent points from a numpy array to the device, the decoder, de-standardization and
           the shift to the stored origin (what decode does after the network), and the
           coordinates back into a numpy array. Both pay for getting the results out. A few
           warm-up calls, then calls for --seconds.
  train    samples/s at batch 64 and 1,024 over --frames random frames (all training, no
           validation split): each epoch shuffles the frames, then per batch index_select,
           zero_grad, forward, loss, backward, step and reads the loss (loss.item(), as
           autoencoder::train does). One warm-up epoch, then enough epochs to fill --seconds
           (at least 3); the median of the epochs' rates after the first. mummi's rates are
           those autoencoder::train reports per epoch (epoch_report::samples_per_s); its
           preprocessing fit and validation pass are outside them, as they are outside
           PyTorch's.

Both sides run with --threads intra-op threads (torch.set_num_threads / training_options::
threads) and OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to the same number, with the same
glibc allocator policy (--malloc: by default the one the mummi program sets at start, which
keeps large freed blocks instead of returning them to the OS and faulting them in again on the
next call) and with whatever --env adds. With Debian's LibTorch (GNU OpenMP) over Debian's
pthread OpenBLAS, OpenMP's spinning threads and OpenBLAS' own threads contend for the cores:
--env OMP_WAIT_POLICY=passive shows what that costs (docs/benchmarks.md).

Prints the machine, the table with the ratio mummi / PyTorch (above 1: mummi faster) and the
load average before and after; --json FILE writes everything.

Usage: bench/ml_bench.py [--build-dir build/release] [--device cpu|cuda] [--python PATH]
                         [--threads N] [--seconds S] [--frames N] [--sizes demo,paper]
                         [--malloc mummi|default] [--env NAME=VALUE ...] [--quick]
                         [--json FILE]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZES = {
    "demo": {"beads": 127, "hidden": [256, 64], "latent": 32},
    "paper": {"beads": 763, "hidden": [1024, 256], "latent": 32},
}
DECODE_BATCHES = [1, 64, 1024]
TRAIN_BATCHES = [64, 1024]


# --- the PyTorch side (run as `ml_bench.py --peer ...` under --python) -----------------------

def peer_main(a):
    import numpy as np
    import torch
    import torch.nn.functional as F

    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"ml_bench.py --peer: --device cuda, but torch {torch.__version__} sees no GPU")
    device = torch.device("cuda:0" if a.device == "cuda" else "cpu")
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def stack(sizes):
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(torch.nn.ELU())
        return torch.nn.Sequential(*layers)

    def network(size):
        sizes = [size["beads"] * 3] + size["hidden"] + [size["latent"]]
        torch.manual_seed(1)
        return stack(sizes).to(device), stack(sizes[::-1]).to(device)

    def time_decode(size, batch):
        beads = size["beads"]
        _, decoder = network(size)
        decoder.eval()
        rng = np.random.default_rng(7)
        mean = torch.from_numpy(rng.normal(0, 1, beads * 3).astype(np.float32)).to(device)
        std = torch.from_numpy(rng.uniform(0.5, 1.5, beads * 3).astype(np.float32)).to(device)
        origin = torch.from_numpy(rng.normal(0, 1, 3).astype(np.float32)).to(device)
        latent = np.random.default_rng(11).standard_normal(
            (batch, size["latent"])).astype(np.float32)

        def decode():
            with torch.no_grad():
                z = torch.from_numpy(latent).to(device)
                x = decoder(z) * std + mean
                x = (x.reshape(batch, beads, 3) + origin).reshape(batch, beads * 3)
                return x.cpu().numpy()

        for _ in range(3):
            decode()
        calls, checksum = [], 0.0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < a.seconds or len(calls) < 5:
            t0 = time.perf_counter()
            out = decode()
            t1 = time.perf_counter()
            checksum += float(out[-1, -1])
            calls.append((t1 - t0) * 1e3)
            elapsed = t1 - start
        if out.shape != (batch, beads * 3) or not np.isfinite(checksum):
            sys.exit("ml_bench.py --peer: decode gave a wrong or non-finite result")
        return {"per_s": batch * len(calls) / elapsed, "calls": len(calls),
                "median_call_ms": statistics.median(calls)}

    def train(size, data, batch, epochs):
        encoder, decoder = network(size)
        params = list(encoder.parameters()) + list(decoder.parameters())
        adam = torch.optim.Adam(params, lr=1e-3)
        rng = np.random.default_rng(1)
        n = data.shape[0]
        rates = []
        for _ in range(epochs):
            sync()
            t0 = time.perf_counter()
            perm = torch.from_numpy(rng.permutation(n)).to(device)
            encoder.train()
            decoder.train()
            loss_sum = 0.0
            for i in range(0, n, batch):
                x = data.index_select(0, perm[i:i + batch])
                adam.zero_grad()
                loss = F.mse_loss(decoder(encoder(x)), x)
                loss.backward()
                adam.step()
                loss_sum += loss.item() * x.shape[0]
            sync()
            rates.append(n / (time.perf_counter() - t0))
            if not np.isfinite(loss_sum):
                sys.exit("ml_bench.py --peer: training diverged")
        return rates

    def time_training(size, batch):
        beads = size["beads"]
        rng = np.random.default_rng(3)
        # Standardized frames, as autoencoder::train feeds its network.
        data = torch.from_numpy(rng.standard_normal((a.frames, beads * 3)).astype(
            np.float32)).to(device)
        first = train(size, data, batch, 1)[0]
        epoch_s = a.frames / max(first, 1e-9)
        epochs = int(min(max(1 + -(-a.seconds // max(epoch_s, 1e-9)), 3), 100))
        rates = train(size, data, batch, epochs)
        return {"per_s": statistics.median(rates[1:]), "frames": a.frames,
                "epoch_rates": rates}

    results = []
    for name in a.sizes.split(","):
        size = SIZES[name]
        for batch in DECODE_BATCHES:
            results.append({"size": name, "test": "decode", "batch": batch,
                            **time_decode(size, batch)})
        for batch in TRAIN_BATCHES:
            results.append({"size": name, "test": "train", "batch": batch,
                            **time_training(size, batch)})
    info = {"program": "pytorch", "torch_version": torch.__version__,
            "numpy_version": np.__version__, "python": sys.executable,
            "device": a.device, "threads": torch.get_num_threads(), "results": results}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    print(json.dumps(info))


# --- the driver -------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def run(cmd, env, what):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        sys.exit(f"ml_bench.py: {what} failed (exit {r.returncode}): {' '.join(cmd)}")
    return r.stdout


def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"),
                    help="build holding bench/ml_bench")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter with PyTorch for the peer (default Debian's)")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads on both sides; 0 (default): each side's own choice "
                         "(mummi: ml::set_cpu_threads, PyTorch: every core), no thread "
                         "variables set")
    ap.add_argument("--seconds", type=float, help="time per measurement (default 3; quick 0.3)")
    ap.add_argument("--frames", type=int,
                    help="training frames (default 4096 on cpu, 32768 on cuda; quick 1024)")
    ap.add_argument("--sizes", default="demo,paper", help="comma-separated: demo, paper")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set an environment variable for both sides (repeatable), e.g. "
                         "OMP_WAIT_POLICY=passive, or OPENBLAS_CORETYPE=SkylakeX (Debian's "
                         "OpenBLAS 0.3.21 falls back to old kernels on CPUs it does not know)")
    ap.add_argument("--malloc", choices=["mummi", "default"], default="mummi",
                    help="glibc allocator policy of both processes: 'mummi' (default) keeps "
                         "large freed blocks as the mummi program does at start "
                         "(coupling::tune_allocator: MALLOC_MMAP_THRESHOLD_=64 MiB, "
                         "MALLOC_TRIM_THRESHOLD_=256 MiB); 'default' leaves glibc's")
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads < 0:
        sys.exit("ml_bench.py: --threads must be >= 0")
    for s in a.sizes.split(","):
        if s not in SIZES:
            sys.exit(f"ml_bench.py: --sizes: '{s}' is not one of {', '.join(SIZES)}")
    if a.seconds is None:
        a.seconds = 0.3 if a.quick else 3.0
    if a.seconds <= 0:
        sys.exit("ml_bench.py: --seconds must be > 0")
    if a.frames is None:
        a.frames = 1024 if a.quick else (32768 if a.device == "cuda" else 4096)
    if a.frames < 2:
        sys.exit("ml_bench.py: --frames must be >= 2")
    if a.peer:
        peer_main(a)
        return

    binary = os.path.join(a.build_dir, "bench", "ml_bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: cmake --build {a.build_dir} --target ml_bench")
    python = shutil.which(a.python) or a.python
    env = dict(os.environ)
    if a.threads > 0:
        env.update(OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    for item in a.env:
        name, eq, value = item.partition("=")
        if not eq or not name:
            sys.exit(f"ml_bench.py: --env '{item}' is not NAME=VALUE")
        env[name] = value
    if a.malloc == "mummi":
        env.update(MALLOC_MMAP_THRESHOLD_=str(64 << 20), MALLOC_TRIM_THRESHOLD_=str(256 << 20))

    load_before = os.getloadavg()
    print(f"machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}")
    print(f"device {a.device}, {a.threads or 'default'} threads, {a.seconds:g} s per measurement, "
          f"{a.frames} training frames, allocator policy {a.malloc}"
          + "".join(f", {item}" for item in a.env),
          flush=True)

    common = ["--device", a.device, "--threads", str(a.threads), "--seconds", str(a.seconds),
              "--frames", str(a.frames)]
    mummi_runs, peer_runs, rows = [], [], []

    def save(load_after=None):
        # Written after every size, so a run cut short still leaves what it measured.
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"machine": {"node": platform.node(), "cpu": cpu_model(),
                                       "cores": os.cpu_count(), "kernel": platform.release()},
                           "device": a.device, "threads": a.threads, "seconds": a.seconds,
                           "frames": a.frames, "malloc": a.malloc, "env": a.env,
                           "load_before": load_before, "load_after": load_after,
                           "mummi": mummi_runs, "pytorch": peer_runs, "rows": rows}, f,
                          indent=1)

    with tempfile.TemporaryDirectory(prefix="mummi-ml-bench-") as tmp:
        for name in a.sizes.split(","):
            out = os.path.join(tmp, f"{name}.json")
            start = time.perf_counter()
            run([binary, "--size", name, "--json", out] + common, env, f"ml_bench ({name})")
            with open(out) as f:
                mr = json.load(f)
            print(f"  mummi {name}: {time.perf_counter() - start:.0f} s", flush=True)
            start = time.perf_counter()
            pr = json.loads(run(
                [python, os.path.abspath(__file__), "--peer", "--sizes", name] + common, env,
                f"PyTorch peer ({name}, {python})").strip().splitlines()[-1])
            print(f"  PyTorch {name}: {time.perf_counter() - start:.0f} s", flush=True)
            mummi_runs.append(mr)
            peer_runs.append(pr)
            peer = {(r["size"], r["test"], r["batch"]): r for r in pr["results"]}
            size_rows = []
            for r in mr["results"]:
                p = peer[(r["size"], r["test"], r["batch"])]
                size_rows.append({"size": r["size"], "test": r["test"], "batch": r["batch"],
                                  "mummi_per_s": r["per_s"], "pytorch_per_s": p["per_s"],
                                  "ratio": r["per_s"] / p["per_s"], "mummi": r, "pytorch": p})
            rows.extend(size_rows)
            print_rows(size_rows, header=False)
            save()

    m0, p0 = mummi_runs[0], peer_runs[0]
    print(f"\nmummi: LibTorch {m0['torch_version']} (C++), {m0['threads']} threads")
    print(f"PyTorch: torch {p0['torch_version']}, numpy {p0['numpy_version']}, {p0['python']}, "
          f"{p0['threads']} threads")
    if "gpu" in p0:
        print(f"GPU: {p0['gpu']} (CUDA {p0['cuda_version']})")
    print()
    print_rows(rows, header=True)
    load_after = os.getloadavg()
    print("\nload average (1/5/15 min): before " + " ".join(f"{x:.2f}" for x in load_before) +
          ", after " + " ".join(f"{x:.2f}" for x in load_after))
    save(load_after)


def print_rows(rows, header):
    # Decode rows also give each side's median time per call: on a shared machine a few
    # preempted calls pull the mean rate down, the median less so.
    if header:
        print(f"{'size':<6} {'test':<7} {'batch':>6} {'unit':<13} {'mummi':>12} "
              f"{'PyTorch':>12} {'mummi/PyTorch':>14} {'median ms/call':>22}")
    for row in rows:
        unit = "structures/s" if row["test"] == "decode" else "samples/s"
        median = ""
        if row["test"] == "decode":
            median = (f"{row['mummi']['median_call_ms']:.3f} / "
                      f"{row['pytorch']['median_call_ms']:.3f}")
        print(f"{row['size']:<6} {row['test']:<7} {row['batch']:>6} {unit:<13} "
              f"{fmt(row['mummi_per_s']):>12} {fmt(row['pytorch_per_s']):>12} "
              f"{row['ratio']:>13.2f}x {median:>22}", flush=True)

if __name__ == "__main__":
    main()
