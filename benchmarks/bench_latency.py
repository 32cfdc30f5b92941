"""Latency of small batches (a deployed model scoring requests as they come): a fitted
GradientMetricTransformer's ``transform`` of 1 and 32 samples against one plain forward +
backward of the same batch (``torch.autograd.grad`` of the summed loss: no per-sample
gradients, the cost floor), interleaved, best of N, in one process.

Models: the paper CNN (1x28x28, 10 classes) and torchvision's ResNet-18 (10 classes,
3x32x32), random weights, eval mode. Target (issue 26): transform of one sample at most 3x
the plain pass, on both networks.

Run: python benchmarks/bench_latency.py [--repeats 15] [--sizes 1 32] [--threads 2]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from skgradunc import GradientMetricTransformer, PaperCNN  # noqa: E402
from skgradunc._engine import target_loss  # noqa: E402


def _resnet18():
    import torchvision
    return torchvision.models.resnet18(num_classes=10)


MODELS = {"cnn": (PaperCNN, (1, 28, 28)), "resnet18": (_resnet18, (3, 32, 32))}


def _plain(module, x):
    params = [p for p in module.parameters() if p.requires_grad]

    def run():
        torch.autograd.grad(target_loss(module(x), "predicted").sum(), params)
    return run


def _best(functions, repeats):
    """Best wall time (s) of each function, rounds interleaved."""
    times = {name: [] for name in functions}
    for _ in range(repeats + 2):   # two warm-up rounds
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values[2:]) for name, values in times.items()}


def measure(model, sizes, repeats, seed=0):
    """{size: (transform seconds, plain seconds)} for ``model``."""
    torch.manual_seed(seed)
    build, shape = MODELS[model]
    module = build().eval()
    rng = np.random.default_rng(seed)
    fit_X = rng.random((2, *shape), dtype=np.float32)
    grad = GradientMetricTransformer(module, device="cpu").fit(fit_X)
    out = {}
    for n in sizes:
        X = rng.random((n, *shape), dtype=np.float32)
        best = _best({"transform": lambda: grad.transform(X),
                      "plain": _plain(module, torch.from_numpy(X))}, repeats)
        out[n] = (best["transform"], best["plain"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of "
          f"{args.repeats} interleaved rounds, CPU")
    print(f"{'model':<10}{'samples':>8}{'transform':>12}{'plain':>10}{'ratio':>8}")
    results = {}
    for model in args.models:
        for n, (ours, plain) in measure(model, args.sizes, args.repeats).items():
            results[(model, n)] = ours / plain
            print(f"{model:<10}{n:>8}{1e3 * ours:>10.2f}ms{1e3 * plain:>8.2f}ms"
                  f"{ours / plain:>7.2f}x")
    return results


if __name__ == "__main__":
    main()
