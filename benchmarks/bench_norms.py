"""Norm-only features (``statistics=["l2"]``, Lee & AlRegib's kind): the engine against
the plain baseline that materialises every per-sample gradient, ``torch.func.vmap`` over
``grad`` of the whole network followed by the norms; interleaved, best of N, one process.

Models: the small ViT of bench_transformer.py (ViT-Tiny's width, 4 layers, 64 tokens + the
class token, 64 images 3x32x32) and one ViT-B/16-sized encoder block (width 768, 12 heads,
MLP 3072, 197 tokens; 8 samples) under a linear head. Target (issue 26): the engine at
least 2x the baseline's speed on both, exact against the float64 reference (tests).

Run: python benchmarks/bench_norms.py [--models vit vit-b-block] [--repeats 3]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transformer import _small_vit  # noqa: E402
from skgradunc import GradientMetricTransformer  # noqa: E402
from skgradunc._engine import target_loss  # noqa: E402


class EncoderBlockClassifier(torch.nn.Module):
    """One ViT-B/16 encoder block on (n, 197, 768) tokens, the class token read out."""

    def __init__(self, n_classes=10):
        super().__init__()
        from torchvision.models.vision_transformer import EncoderBlock
        self.block = EncoderBlock(num_heads=12, hidden_dim=768, mlp_dim=3072, dropout=0.0,
                                  attention_dropout=0.0)
        self.head = torch.nn.Linear(768, n_classes)

    def forward(self, tokens):
        return self.head(self.block(tokens)[:, 0])


MODELS = {"vit": (_small_vit, (3, 32, 32), 64),
          "vit-b-block": (EncoderBlockClassifier, (197, 768), 8)}


def vmap_norms(module, X):
    """The baseline: every weight's per-sample gradient by vmap(grad), then the L2 norm
    of each layer's and of the whole gradient."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = dict(module.named_buffers())

    def loss(p, x):
        return target_loss(functional_call(module, (p, buffers), (x[None],)), "predicted").sum()
    per_sample = vmap(grad(loss), in_dims=(None, 0))
    layers = {}
    for name in params:
        layers.setdefault(name.rpartition(".")[0], []).append(name)

    def run():
        grads = per_sample(params, torch.from_numpy(X))
        squares = {k: g.flatten(1).pow(2).sum(1) for k, g in grads.items()}
        out = [sum(squares[n] for n in names).sqrt() for names in layers.values()]
        out.append(sum(squares.values()).sqrt())
        return torch.stack(out, 1)
    return run


def measure(model, repeats, seed=0):
    torch.manual_seed(seed)
    build, shape, n = MODELS[model]
    module = build().eval()
    X = np.random.default_rng(seed).random((n, *shape), dtype=np.float32)
    engine = GradientMetricTransformer(module, statistics=["l2"], softmax_features=False,
                                       batch_size=n, device="cpu").fit(X[:2])
    methods = {"engine": lambda: engine.transform(X), "vmap + norms": vmap_norms(module, X)}
    best = {}
    for name, fn in methods.items():
        fn()   # warm-up
        best[name] = float("inf")
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return n, best, engine.layer_rules_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of "
          f"{args.repeats} interleaved rounds, CPU, statistics=['l2']")
    speedups = {}
    for model in args.models:
        n, best, _ = measure(model, args.repeats)
        speedups[model] = best["vmap + norms"] / best["engine"]
        print(f"{model:<12} {n} samples: engine {best['engine']:.3f} s, vmap + norms "
              f"{best['vmap + norms']:.3f} s: engine {speedups[model]:.2f}x the baseline's "
              "speed")
    return speedups


if __name__ == "__main__":
    main()
