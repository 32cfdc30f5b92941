"""Throughput and peak memory of transform reading 1x28x28 images from different sources.

The paper CNN (random weights) transforms float32 images in [0, 1], written once to a
``.npy`` file and read as (a) ``array``: ``np.load(path)``, an in-memory ndarray;
(b) ``memmap``: ``np.load(path, mmap_mode="r")``, read block by block from disk;
(c) ``Dataset``: a torch Dataset over that memmap returning ``(x, 0)`` item by item (as a
user's dataset reading from disk); (d) ``DataLoader``: a non-shuffling DataLoader of 256
over that Dataset.

Throughput (the ratio target: each source >= 0.9x the array's rate): the sources
interleaved in one process, best of ``--repeats`` rounds at ``--rate-n`` images, the order
rotating each round, so that slow phases of a shared machine hit all sources alike (the
project's rule: ratios measured in one process; rates of separate processes differ by
more than the 10% margin on a busy machine).

Memory (the target: going from the smallest to the largest ``--n``, the peak anonymous
memory of memmap, Dataset and DataLoader grows by <= 300 MB): each (source, n) is a
fresh process of its own, which fits the transformer on the source, runs an untimed
warm-up transform of one chunk, then transforms all n while a thread samples
``RssAnon`` from /proc/self/status every ~2 ms. Anonymous memory is what the process
holds; a memmap's file pages in the page cache are not (VmHWM counts them too: printed
for information only). The float64 result alone grows by n x features x 8 bytes; the
array's peak also grows by the images it holds, n x 3,136 bytes, by design. Those
processes' own rates are printed for information (``--jobs`` > 1 runs several at once:
quicker, the same peaks, rates then not comparable).

Before timing, every source's features are checked to be bitwise identical to the
array's, at ``--check-n`` images.

Run: python benchmarks/bench_data.py                      # 20,000 and 200,000 (minutes)
     python benchmarks/bench_data.py --n 2000 4000 --rate-n 2000 --repeats 1   # quick
"""

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from skgradunc import GradientMetricTransformer, PaperCNN

SHAPE = (1, 28, 28)
SOURCES = ("array", "memmap", "Dataset", "DataLoader")
STREAMING = ("memmap", "Dataset", "DataLoader")   # the memory target's sources
MAX_INCREASE_MB = 300
MIN_RATIO = 0.9
ROWS_PER_SEED = 4096   # images generated per seed: a file's rows do not depend on its n


class DiskImages(Dataset):
    """Items ``(image, 0)`` read one by one from a ``.npy`` file opened as a memmap."""

    def __init__(self, path):
        self.images = np.load(path, mmap_mode="r")

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return torch.from_numpy(np.array(self.images[index])), 0


def images_file(folder, n, seed=0):
    """Path of ``images_<n>.npy`` in ``folder``, written (block by block) if absent.
    Row i is the same in every file, whatever its n."""
    path = Path(folder) / f"images_{n}.npy"
    if path.exists():
        old = np.load(path, mmap_mode="r")
        if old.shape == (n, *SHAPE) and old.dtype == np.float32:
            return path
    partial = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, *SHAPE))
    for block, start in enumerate(range(0, n, ROWS_PER_SEED)):
        rows = min(ROWS_PER_SEED, n - start)
        out[start:start + rows] = np.random.default_rng([seed, block]).random(
            (rows, *SHAPE), dtype=np.float32)
    out.flush()
    del out
    partial.replace(path)
    return path


def make_source(name, path):
    if name == "array":
        return np.load(path)
    if name == "memmap":
        return np.load(path, mmap_mode="r")
    if name == "Dataset":
        return DiskImages(path)
    if name == "DataLoader":
        return DataLoader(DiskImages(path), batch_size=256, shuffle=False, num_workers=0)
    raise ValueError(f"unknown source {name!r}")


def fitted(source, batch_size):
    torch.manual_seed(0)
    module = PaperCNN().eval()
    return GradientMetricTransformer(module, batch_size=batch_size, device="cpu").fit(source)


# -- memory -------------------------------------------------------------------------
def status_kb(*fields):
    """{field: kB} of /proc/self/status (Linux)."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in fields:
                values[key] = int(rest.split()[0])
    return values


class AnonSampler:
    """Peak RssAnon (kB) seen by a daemon thread reading it every ``interval`` seconds."""

    def __init__(self, interval=0.002):
        self.interval, self.peak, self.samples = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.peak = max(self.peak, status_kb("RssAnon")["RssAnon"])
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kb("RssAnon")["RssAnon"])  # the result included


def child(args):
    """One source at one n in this (fresh) process; prints its figures as JSON."""
    source = make_source(args.child, args.path)
    n = args.n[0]
    transformer = fitted(source, args.batch_size)
    warm = np.array(np.load(args.path, mmap_mode="r")[:args.batch_size])
    transformer.transform(warm)  # one chunk: first-call costs (kernels, pools) untimed
    del warm
    gc.collect()
    baseline = status_kb("RssAnon")["RssAnon"]
    with AnonSampler() as sampler:
        start = time.perf_counter()
        features = transformer.transform(source)
        seconds = time.perf_counter() - start
    assert features.shape == (n, len(transformer.get_feature_names_out())), features.shape
    assert features.dtype == np.float64 and np.isfinite(features).all()
    print(json.dumps({
        "source": args.child, "n": n, "seconds": seconds, "rate": n / seconds,
        "baseline_mb": baseline / 1e3, "peak_mb": sampler.peak / 1e3,
        "vmhwm_mb": status_kb("VmHWM")["VmHWM"] / 1e3, "samples": sampler.samples,
        "features": features.shape[1]}))


def memory_run(source, path, n, batch_size):
    command = [sys.executable, __file__, "--child", source, "--path", str(path),
               "--n", str(n), "--batch-size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{source} at n={n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- throughput and identity --------------------------------------------------------
def interleaved_rates(path, sources, batch_size, repeats):
    """samples/s of each source: best of ``repeats`` rounds running every source in turn
    (the order rotating), in this process."""
    ready = {name: make_source(name, path) for name in sources}
    transformers = {name: fitted(X, batch_size) for name, X in ready.items()}
    n = len(np.load(path, mmap_mode="r"))
    warm = np.load(path, mmap_mode="r")[:2 * batch_size]
    fitted(warm, batch_size).transform(np.array(warm))  # warm-up: kernels, allocator
    best = {name: float("inf") for name in sources}
    for round_ in range(repeats):
        order = sources[round_ % len(sources):] + sources[:round_ % len(sources)]
        for name in order:
            start = time.perf_counter()
            transformers[name].transform(ready[name])
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: n / best[name] for name in sources}


def identical_features(path, sources, batch_size):
    """{source: its features equal the in-memory array's, bit for bit}."""
    reference = fitted(np.load(path), batch_size).transform(np.load(path))
    return {name: bool(np.array_equal(
        fitted(make_source(name, path), batch_size).transform(
            make_source(name, path)), reference)) for name in sources}


# -- report -------------------------------------------------------------------------
def verdict(ok):
    return "ok" if ok else "MISSED"


def report(args, rates, identical, memory):
    sizes = sorted(set(args.n))
    print(f"paper CNN, {'x'.join(map(str, SHAPE))} float32 images, chunk {args.batch_size}, "
          f"device cpu, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"features identical to the array's at n={args.check_n}: " + ", ".join(
        f"{name} {'yes' if same else 'NO'}" for name, same in identical.items()))

    print(f"\nthroughput, one process, n={args.rate_n}, best of {args.repeats} interleaved "
          "round(s)")
    print(f"{'source':<12}{'samples/s':>11}{'ratio to array':>16}   target")
    ratios = {}
    for name, rate in rates.items():
        ratio = rate / rates["array"] if "array" in rates else None
        ratios[name] = ratio
        line = f"{name:<12}{rate:>11,.1f}"
        line += f"{ratio:>15.2f}x" if ratio is not None else f"{'n/a':>16}"
        if name != "array" and ratio is not None:
            line += f"   >= {MIN_RATIO:.2f}x {verdict(ratio >= MIN_RATIO)}"
        print(line)

    print("\nmemory, one process per source and n; RssAnon (anonymous resident memory), MB")
    print(f"{'source':<12}{'n':>9}{'samples/s':>11}{'before':>9}{'peak':>9}{'peak-before':>13}"
          f"{'VmHWM':>9}")
    for name, runs in memory.items():
        for n in sizes:
            run = runs[n]
            print(f"{name:<12}{n:>9,}{run['rate']:>11,.1f}{run['baseline_mb']:>9.1f}"
                  f"{run['peak_mb']:>9.1f}{run['peak_mb'] - run['baseline_mb']:>13.1f}"
                  f"{run['vmhwm_mb']:>9.1f}")
    increase = {name: runs[sizes[-1]]["peak_mb"] - runs[sizes[0]]["peak_mb"]
                for name, runs in memory.items()} if len(sizes) > 1 else {}
    if increase:
        features = next(iter(memory.values()))[sizes[0]]["features"]
        result_mb = (sizes[-1] - sizes[0]) * features * 8 / 1e6
        data_mb = (sizes[-1] - sizes[0]) * np.prod(SHAPE) * 4 / 1e6
        print(f"\npeak RssAnon increase from n={sizes[0]:,} to n={sizes[-1]:,} (the float64 "
              f"result alone: +{result_mb:.1f} MB; the images: +{data_mb:.1f} MB)")
        for name, mb in increase.items():
            target = (f"   <= {MAX_INCREASE_MB} MB {verdict(mb <= MAX_INCREASE_MB)}"
                      if name in STREAMING else "   (holds the images)")
            print(f"{name:<12}{mb:>+9.1f} MB{target}")
    return ratios, increase


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20000, 200000],
                        help="images for the memory runs, one process each")
    parser.add_argument("--rate-n", type=int, default=20000,
                        help="images for the interleaved throughput rounds")
    parser.add_argument("--repeats", type=int, default=3, help="throughput rounds")
    parser.add_argument("--check-n", type=int, default=None,
                        help="images for the identical-features check (default: "
                             "min(1000, --n, --rate-n))")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dir", default=None,
                        help="folder for the .npy files, kept and reused (default: a "
                             "temporary folder, removed at the end)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="memory runs at once (>1: quicker; their peaks are per "
                             "process, but their rates are then not comparable)")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--child", choices=SOURCES, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    sources = [name for name in SOURCES if name in args.sources]
    if args.check_n is None:
        args.check_n = min(1000, args.rate_n, *args.n)
    folder = args.dir or tempfile.mkdtemp(prefix="bench_data_")
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        identical = identical_features(images_file(folder, args.check_n),
                                       [name for name in sources if name != "array"],
                                       args.batch_size)
        rates = interleaved_rates(images_file(folder, args.rate_n), sources, args.batch_size,
                                  args.repeats)
        runs = [(name, images_file(folder, n), n) for n in sorted(set(args.n))
                for name in sources]
        with ThreadPoolExecutor(args.jobs) as pool:
            done = pool.map(lambda run: memory_run(*run, args.batch_size), runs)
            memory = {name: {} for name in sources}
            for (name, _, n), result in zip(runs, done):
                memory[name][n] = result
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    ratios, increase = report(args, rates, identical, memory)
    return {"rates": rates, "ratios": ratios, "identical": identical, "memory": memory,
            "increase_mb": increase}


if __name__ == "__main__":
    main()
