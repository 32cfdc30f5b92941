"""Throughput (and peak memory) of per-sample gradient statistics, every method in one run.

Methods (benchmarks/methods.py): the package's engine; the engine forced onto
torch.func.vmap; Opacus GradSampleModule and BackPACK BatchGrad (``pip install '.[bench]'``;
their per-sample gradients go through the same statistics code); a naive per-sample loop;
and the plain batched forward + backward of the summed loss (no per-sample gradients) as
the cost floor. Models: the paper CNN (2,048 x 1x28x28), torchvision's ResNet-18 with
random weights (256 x 3x32x32), and for layers without rules (64 x 3x32x32) a GroupNorm
ResNet-18, MobileNetV3-small (depthwise convolutions) and a small VisionTransformer. Rates
are interleaved best-of-N rounds in one process; ``--memory`` adds each method's peak
resident memory, measured in a process of its own.

Run: python benchmarks/bench_transformer.py [--model cnn|resnet18|resnet18-gn|...] [--memory]
     python benchmarks/bench_transformer.py --phases     # where one CNN chunk's time goes
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import METHODS, Unavailable  # noqa: E402

from skgradunc import PaperCNN  # noqa: E402
from skgradunc._device import resolve_device  # noqa: E402
from skgradunc._engine import target_loss  # noqa: E402


def _torchvision(name, **kwargs):
    return lambda: getattr(__import__("torchvision").models, name)(num_classes=10, **kwargs)


def _group_norm(channels):
    return torch.nn.GroupNorm(min(32, channels // 2), channels)


def _small_vit():
    from torchvision.models import VisionTransformer
    # ViT-Tiny's width (192, 3 heads, MLP 768) at 4 layers, 32x32 images in 4x4 patches
    vit = VisionTransformer(image_size=32, patch_size=4, num_layers=4, num_heads=3,
                            hidden_dim=192, mlp_dim=768, num_classes=10)
    # torchvision starts the head at zero: every other gradient would be zero
    torch.nn.init.normal_(vit.heads.head.weight, std=0.05)
    return vit


MODELS = {  # model, input shape, n, naive n, repeats
    "cnn": (lambda: PaperCNN(), (1, 28, 28), 2048, 512, 7),
    "resnet18": (_torchvision("resnet18"), (3, 32, 32), 256, 32, 1),
    # issue 12: layers without rules (GroupNorm; depthwise convolutions; attention)
    "resnet18-gn": (_torchvision("resnet18", norm_layer=_group_norm), (3, 32, 32), 64, 16, 1),
    "mobilenet_v3_small": (_torchvision("mobilenet_v3_small"), (3, 32, 32), 64, 16, 3),
    "vit": (_small_vit, (3, 32, 32), 64, 16, 3),
}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def build(args):
    make, shape, n, naive_n, repeats = MODELS[args.model]
    torch.manual_seed(0)
    module = make().eval()
    n = args.n or n
    X = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
    return module, X, args.naive_n or naive_n, args.repeats or repeats


def prepare(module, X, naive_n, args, device, only=None):
    """name -> (function, samples) for every method that can run here; name -> reason else."""
    ready, unavailable = {}, {}
    for name, factory in METHODS.items():
        if only is not None and name != only:
            continue
        data = X[:naive_n] if name.startswith("naive") else X
        try:
            ready[name] = (factory(module, data, args.batch_size, device), len(data))
        except Unavailable as exc:
            unavailable[name] = str(exc)
    return ready, unavailable


def interleaved_best(methods, repeats, device, gpu_peaks=None):
    """Best time of each method over rounds that run every method in turn, so that slow
    phases of a shared machine hit all methods alike. On a GPU, ``gpu_peaks`` receives each
    method's peak of allocated device memory during its warm-up (GB)."""
    for name, (fn, _) in methods.items():
        if gpu_peaks is not None:
            torch.cuda.reset_peak_memory_stats()
        fn()  # warm-up
        if gpu_peaks is not None:
            gpu_peaks[name] = torch.cuda.max_memory_allocated() / 1e9
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, (fn, _) in methods.items():
            best[name] = min(best[name], seconds(fn, device))
    return {name: methods[name][1] / best[name] for name in methods}


def peak_rss_gb():
    """This process's peak resident memory. VmHWM belongs to the address space, which exec
    replaces, whereas ru_maxrss survives exec on Linux and would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def peak_memory(args, method):
    """Peak RSS (GB) of a process that builds the model and runs only ``method`` once."""
    command = [sys.executable, __file__, "--model", args.model, "--batch-size",
               str(args.batch_size), "--device", args.device, "--only", method]
    if args.n:
        command += ["--n", str(args.n)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def phases(module, X, batch_size, device, repeats):
    """Median time of each phase of the per-layer engine on one chunk, interleaved."""
    from torch.func import functional_call

    from skgradunc._engine import Plan, make_plan
    from skgradunc._engine._audit import weights_on_device
    from skgradunc._engine._features import FeatureAssembly
    from skgradunc._engine._plan import bind_layers
    from skgradunc._layers import Call, block_budget
    from skgradunc.statistics import SOFTMAX_FEATURES

    x = torch.from_numpy(X[:batch_size]).to(device)
    plan = make_plan(Plan.for_network(module, softmax=SOFTMAX_FEATURES), module, x[:2], device)
    layers = bind_layers(plan, module)
    assemble = FeatureAssembly(plan)
    weights, frozen = weights_on_device(module, plan.parameters, device)
    everything = {**weights, **frozen}
    budget = block_budget(2**30, device)  # as the transformer's default max_memory
    params = list(module.to(device).parameters())
    times = {name: [] for name in ("plain forward+backward", "engine forward",
                                   "engine backward to layer outputs",
                                   "per-sample products + their statistics",
                                   "groups, network, softmax features")}
    for _ in range(repeats + 2):
        marks = [time.perf_counter()]
        torch.autograd.grad(target_loss(module(x), "predicted").sum(), params)
        sync(device)
        marks.append(time.perf_counter())
        calls = {}
        hooks = [layer.register_forward_hook(
            lambda m, i, o, name=name: calls.__setitem__(name, (i[0].detach(), o)))
            for name, (layer, _) in layers.items()]
        live = {k: v.detach().requires_grad_() for k, v in weights.items()}
        logits = functional_call(module, (live, frozen), (x,))
        sync(device)
        marks.append(time.perf_counter())
        for hook in hooks:
            hook.remove()
        grad_outputs = torch.autograd.grad(target_loss(logits, "predicted").sum(),
                                           [calls[name][1] for name in layers])
        sync(device)
        marks.append(time.perf_counter())
        summaries = {}
        for (name, (layer, rule)), grad_out in zip(layers.items(), grad_outputs):
            tensors = {key[len(name) + 1:]: value for key, value in everything.items()
                       if key.startswith(name + ".")}
            call = Call((calls[name][0],), (calls[name][1],))
            for param, summary in rule.summaries(layer, [call], [(grad_out,)], tensors,
                                                 budget).items():
                summaries[f"{name}.{param}"] = summary
        sync(device)
        marks.append(time.perf_counter())
        assemble(summaries, logits.detach())
        sync(device)
        marks.append(time.perf_counter())
        for name, start, end in zip(times, marks, marks[1:]):
            times[name].append(end - start)
    print(f"one chunk of {batch_size}, median of {repeats} interleaved rounds, device {device}")
    for name, values in times.items():
        print(f"{name:<42}{1e3 * np.median(values[2:]):>8.1f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--n", type=int, default=None, help="inputs (default per model)")
    parser.add_argument("--naive-n", type=int, default=None,
                        help="inputs for the slow per-sample loop (its rate is per sample)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default per model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--memory", action="store_true",
                        help="also measure each method's peak memory in its own process")
    parser.add_argument("--phases", action="store_true",
                        help="print where one CNN chunk's time goes instead of the table")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one method, for --memory
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    module, X, naive_n, repeats = build(args)
    if args.phases:
        return phases(module, X, args.batch_size, device, max(repeats, 10))
    if args.only:
        ready, _ = prepare(module, X, naive_n, args, device, only=args.only)
        fn, samples = ready[args.only]
        before = peak_rss_gb()
        rate = samples / seconds(fn, device)
        print(json.dumps({"rate": rate, "peak_gb": peak_rss_gb(), "before_gb": before}))
        return None
    ready, unavailable = prepare(module, X, naive_n, args, device)
    gpu_peaks = {} if device.startswith("cuda") else None
    rates = interleaved_best(ready, repeats, device, gpu_peaks)
    memory = {name: peak_memory(args, name) for name in ready} if args.memory else {}
    where = f"{device} ({torch.cuda.get_device_name()})" if gpu_peaks is not None else device
    print(f"{args.model}, {len(X)} x {'x'.join(map(str, X.shape[1:]))}, chunk {args.batch_size}, "
          f"device {where}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"best of {repeats} interleaved round(s)")
    ours = rates["engine (GradientMetricTransformer)"]
    header = f"{'method':<38}{'samples/s':>11}{'engine ratio':>14}"
    print(header + (f"{'peak RSS':>11}" if memory else "")
          + (f"{'peak GPU':>11}" if gpu_peaks else ""))
    for name, rate in rates.items():
        line = f"{name:<38}{rate:>11,.1f}{ours / rate:>13.2f}x"
        if memory:
            line += f"{memory[name]['peak_gb']:>9.2f} GB"
        if gpu_peaks:
            line += f"{gpu_peaks[name]:>9.2f} GB"
        print(line)
    for name, reason in unavailable.items():
        print(f"{name:<38}{'n/a':>11}   {reason}")
    return rates


if __name__ == "__main__":
    main()
