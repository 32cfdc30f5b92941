"""Throughput of GradientMetricTransformer against its two natural baselines.

All three are measured in one run on the same inputs and the same network:

* engine   - GradientMetricTransformer (all 8 statistics per layer + network + softmax)
* naive    - a per-sample loop: forward, torch.autograd.grad, statistics in torch
* backward - one plain forward + ``loss.backward()`` of the *summed* loss per chunk, as in
             a training step (gradients accumulate in .grad); no per-sample gradients
* grad     - the same with ``torch.autograd.grad`` (no accumulation): a stricter floor

Run: python benchmarks/bench_transformer.py [--n 2048] [--batch-size 256] [--device auto]
     python benchmarks/bench_transformer.py --phases     # where one chunk's time goes
"""

import argparse
import time

import numpy as np
import torch

from skgradunc import GradientMetricTransformer, PaperCNN
from skgradunc._device import resolve_device
from skgradunc.gradients import target_loss
from skgradunc.statistics import finalize, summarize


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved_best(methods, repeats, device):
    """Best time of each method over `repeats` rounds that run every method in turn,
    so that slow phases of a shared machine hit all methods alike."""
    for fn, _ in methods.values():
        fn()  # warm-up
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, (fn, _) in methods.items():
            best[name] = min(best[name], seconds(fn, device))
    return {name: methods[name][1] / best[name] for name in methods}


def run_engine(module, X, batch_size, device):
    grad = GradientMetricTransformer(module, batch_size=batch_size, device=device).fit(X[:1])
    return lambda: grad.transform(X)


def run_naive(module, X, device):
    module = module.to(device)
    params = list(module.parameters())
    x_all = torch.from_numpy(X).to(device)

    def loop():
        rows = []
        for x in x_all:
            logits = module(x[None])
            grads = torch.autograd.grad(target_loss(logits, "predicted").sum(), params)
            rows.append(finalize(summarize(torch.cat([g.reshape(1, -1) for g in grads], 1))))
        return torch.cat(rows).cpu()
    return loop


def run_batched(module, X, batch_size, device, accumulate):
    module = module.to(device)
    params = list(module.parameters())
    x_all = torch.from_numpy(X).to(device)

    def plain():
        for start in range(0, len(x_all), batch_size):
            loss = target_loss(module(x_all[start:start + batch_size]), "predicted").sum()
            if accumulate:
                loss.backward()
            else:
                torch.autograd.grad(loss, params)
        module.zero_grad(set_to_none=True)
    return plain


def phases(module, X, batch_size, device, repeats):
    """Median time of each phase of the per-layer engine on one chunk, interleaved."""
    from torch.func import functional_call

    from skgradunc.gradients import (GradientFeatureEngine, _per_sample_layer_gradient,
                                     resolve_groups)
    from skgradunc.statistics import SOFTMAX_FEATURES, STATISTICS

    engine = GradientFeatureEngine(module, "predicted", resolve_groups(module), STATISTICS,
                                   True, SOFTMAX_FEATURES, device)
    weights, frozen = engine._weights_on_device()
    x = torch.from_numpy(X[:batch_size]).to(device)
    params = list(module.to(device).parameters())
    times = {name: [] for name in ("plain forward+backward", "engine forward",
                                   "engine backward to layer outputs",
                                   "per-sample products", "statistics")}
    for _ in range(repeats + 2):
        marks = [time.perf_counter()]
        torch.autograd.grad(target_loss(module(x), "predicted").sum(), params)
        sync(device)
        marks.append(time.perf_counter())
        calls = {}
        hooks = [layer.register_forward_hook(
            lambda m, i, o, name=name: calls.__setitem__(name, (i[0].detach(), o)))
            for name, layer in engine.layers.items()]
        live = {k: v.detach().requires_grad_() for k, v in weights.items()}
        logits = functional_call(module, (live, frozen), (x,))
        sync(device)
        marks.append(time.perf_counter())
        for hook in hooks:
            hook.remove()
        grad_outputs = torch.autograd.grad(target_loss(logits, "predicted").sum(),
                                           [calls[name][1] for name in engine.layers])
        sync(device)
        marks.append(time.perf_counter())
        grads = {}
        for (name, layer), grad_out in zip(engine.layers.items(), grad_outputs):
            for param, g in _per_sample_layer_gradient(layer, calls[name][0], grad_out).items():
                grads[f"{name}.{param}"] = g
        sync(device)
        marks.append(time.perf_counter())
        engine._chunk_features(grads, logits.detach())
        sync(device)
        marks.append(time.perf_counter())
        for name, start, end in zip(times, marks, marks[1:]):
            times[name].append(end - start)
    print(f"one chunk of {batch_size}, median of {repeats} interleaved rounds, device {device}")
    for name, values in times.items():
        print(f"{name:<36}{1e3 * np.median(values[2:]):>8.1f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--naive-n", type=int, default=512,
                        help="samples for the slow per-sample loop (rate is per sample)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--phases", action="store_true",
                        help="print where one chunk's time goes instead of the table")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    module = PaperCNN().eval()
    X = np.random.default_rng(0).random((args.n, 1, 28, 28), dtype=np.float32)
    if args.phases:
        return phases(module, X, args.batch_size, device, max(args.repeats, 10))

    rates = interleaved_best({
        "engine (GradientMetricTransformer)": (run_engine(module, X, args.batch_size, device),
                                               args.n),
        "naive per-sample loop": (run_naive(module, X[:args.naive_n], device), args.naive_n),
        "plain forward + loss.backward()": (
            run_batched(module, X, args.batch_size, device, accumulate=True), args.n),
        "plain forward + autograd.grad": (
            run_batched(module, X, args.batch_size, device, accumulate=False), args.n),
    }, args.repeats, device)

    print(f"paper CNN, {args.n} x 1x28x28, chunk {args.batch_size}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'method':<38}{'samples/s':>12}{'engine ratio':>14}")
    ours = rates["engine (GradientMetricTransformer)"]
    for name, rate in rates.items():
        print(f"{name:<38}{rate:>12,.0f}{ours / rate:>13.2f}x")
    return rates


if __name__ == "__main__":
    main()
