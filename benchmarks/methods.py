"""The ways of computing per-sample gradient statistics that the benchmark compares.

Each factory returns a function that processes all of X (features computed, not kept).
Alternatives that give per-sample gradients (vmap, Opacus, BackPACK) hand them to the
engine's own statistics routine, so every method computes the same features.
"""

import copy
import warnings

import torch

from skgradunc import GradientMetricTransformer
from skgradunc._engine import Plan, compute_features, lay_out, target_loss
from skgradunc._engine._features import FeatureAssembly
from skgradunc._engine._vmap import WholeNetworkVmap
from skgradunc._layers import summarize_gradient
from skgradunc.statistics import SOFTMAX_FEATURES, finalize, summarize


class Unavailable(Exception):
    """The method cannot run here (not installed, or unsupported layers)."""


def _vmap_plan(module):
    """The engine's plan with the whole-network vmap strategy forced."""
    return lay_out(Plan.for_network(module, softmax=SOFTMAX_FEATURES),
                   module).with_strategy("vmap")


def _chunks(X, size, device):
    for start in range(0, len(X), size):
        yield torch.from_numpy(X[start:start + size]).to(device)


def engine(module, X, batch_size, device):
    grad = GradientMetricTransformer(module, batch_size=batch_size, device=device).fit(X[:1])
    return lambda: grad.transform(X)


def engine_vmap(module, X, batch_size, device):
    plan = _vmap_plan(module)   # forced
    return lambda: compute_features(plan, module, X, device=device, batch_size=batch_size,
                                    max_memory=2**30)


def naive(module, X, batch_size, device):
    module = module.to(device)
    params = list(module.parameters())

    def loop():
        for x in _chunks(X, 1, device):
            grads = torch.autograd.grad(target_loss(module(x), "predicted").sum(), params)
            finalize(summarize(torch.cat([g.reshape(1, -1) for g in grads], 1)))
    return loop


def plain(module, X, batch_size, device, accumulate):
    module = module.to(device)
    params = list(module.parameters())

    def run():
        for x in _chunks(X, batch_size, device):
            loss = target_loss(module(x), "predicted").sum()
            if accumulate:
                loss.backward()
            else:
                torch.autograd.grad(loss, params)
        module.zero_grad(set_to_none=True)
    return run


def _per_sample_library(module, X, batch_size, device, wrap, step):
    # these libraries materialise every weight's gradient: the same bound as vmap
    plan = _vmap_plan(module)
    chunk = WholeNetworkVmap(plan, module, device, 2**30).chunk_size(batch_size)
    assemble = FeatureAssembly(plan)
    wrapped = wrap(copy.deepcopy(module).to(device))
    names = [name for name, _ in module.named_parameters()]

    def run():
        for x in _chunks(X, chunk, device):
            with warnings.catch_warnings():  # the libraries' hook notices, once per chunk
                warnings.simplefilter("ignore", UserWarning)
                logits, grads = step(wrapped, x)
            assemble({name: summarize_gradient(g) for name, g in zip(names, grads)}, logits)
    return run


def opacus(module, X, batch_size, device):
    try:
        from opacus import GradSampleModule
    except ImportError as exc:
        raise Unavailable("not installed (pip install '.[bench]')") from exc
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        raise Unavailable("no BatchNorm support")

    def step(wrapped, x):
        wrapped.zero_grad(set_to_none=True)
        logits = wrapped(x)
        torch.nn.functional.cross_entropy(logits, logits.argmax(1).detach(),
                                          reduction="sum").backward()
        return logits.detach(), [p.grad_sample for p in wrapped._module.parameters()]

    def wrap(copy_of_module):
        # Opacus records activations only in training mode; with dropout off, this network
        # (no BatchNorm, checked above) computes exactly what it computes in eval mode
        copy_of_module.train()
        for m in copy_of_module.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        return GradSampleModule(copy_of_module, loss_reduction="sum")
    return _tried(module, X, batch_size, device, wrap, step)


def backpack(module, X, batch_size, device):
    try:
        from backpack import backpack as backpack_context, extend
        from backpack.extensions import BatchGrad
    except ImportError as exc:
        raise Unavailable("not installed (pip install '.[bench]')") from exc
    loss = extend(torch.nn.CrossEntropyLoss(reduction="sum"))

    def step(wrapped, x):
        wrapped.zero_grad(set_to_none=True)
        logits = wrapped(x)
        with backpack_context(BatchGrad()):
            loss(logits, logits.argmax(1).detach()).backward()
        return logits.detach(), [p.grad_batch for p in wrapped.parameters()]
    return _tried(module, X, batch_size, device, extend, step)


def _tried(module, X, batch_size, device, wrap, step):
    """A library's run, after one trial on two samples: a model it cannot run is n/a."""
    try:
        run = _per_sample_library(module, X, batch_size, device, wrap, step)
        _per_sample_library(module, X[:2], 2, device, wrap, step)()
    except (NotImplementedError, RuntimeError, AttributeError) as exc:  # in-place ReLU, ...
        raise Unavailable(f"fails on this model: {str(exc).splitlines()[0][:60]}") from exc
    return run


METHODS = {
    "engine (GradientMetricTransformer)": engine,
    "engine forced to torch.func.vmap": engine_vmap,
    "Opacus GradSampleModule": opacus,
    "BackPACK BatchGrad": backpack,
    "naive per-sample loop": naive,
    "plain forward + loss.backward()": lambda *a: plain(*a, accumulate=True),
    "plain forward + autograd.grad": lambda *a: plain(*a, accumulate=False),
}
