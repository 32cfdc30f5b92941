"""Checks of the network's autograd graph that every strategy relies on, and the
network's weights as the computation takes them (detached leaves, never the user's)."""

from contextlib import contextmanager

import torch
from torch.func import functional_call

from .._layers import UnsupportedNetworkError, gradient_uses
from .._outputs import first_scores

__all__ = ["UnsupportedNetworkError", "NotPerLayer", "modules_run", "refuse_cut_off",
           "requiring_grad", "weights_on_device", "check_graph", "first_line", "autograd_on"]


@contextmanager
def autograd_on():
    """Autograd as the engine needs it, also inside the caller's ``torch.no_grad()`` or
    ``torch.inference_mode()``: gradients are what it computes, never the user's
    (nothing is written to ``.grad``), and a silent zero would be wrong."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class NotPerLayer(Exception):
    """A chunk's forward showed that the per-layer rules do not cover this network."""


@contextmanager
def modules_run(module, parameter_names):
    """Yields the set, filled during the block, of the names of the modules holding
    ``parameter_names`` that ran (a forward pre-hook on each)."""
    ran, handles = set(), []
    for owner in {name.rpartition(".")[0] for name in parameter_names}:
        handles.append(module.get_submodule(owner).register_forward_pre_hook(
            lambda layer, inputs, owner=owner: ran.add(owner)))
    try:
        yield ran
    finally:
        for handle in handles:
            handle.remove()


def refuse_cut_off(unreached, ran):
    """Parameters without a gradient are fine when their layer did not run (a head used in
    training only); a layer that ran but whose weights do not reach the output has been cut
    off from autograd, and a zero gradient would be wrong."""
    cut = [name for name in unreached if name.rpartition(".")[0] in ran]
    if cut:
        raise UnsupportedNetworkError(
            f"the gradient of {cut} does not reach the network's output although their layer "
            "runs (a detach(), torch.no_grad(), or a reentrant activation checkpoint whose "
            "inputs need no gradient cut it off); exclude them with requires_grad_(False), "
            "or let the gradient through")


def requiring_grad(params):
    """Fresh leaves of the weights that autograd tracks (the user's tensors untouched)."""
    return {k: v.detach().requires_grad_() for k, v in params.items()}


def weights_on_device(module, parameters, device):
    """({name: weight} of ``parameters``, {name: every other parameter and buffer}),
    detached, on ``device``."""
    wanted = set(parameters)
    params, frozen = {}, {}
    for name, p in module.named_parameters():
        (params if name in wanted else frozen)[name] = p.detach().to(device)
    frozen.update({name: b.detach().to(device) for name, b in module.named_buffers()})
    return params, frozen


def check_graph(module, parameters, params, frozen, x):
    """One forward with autograd, before any strategy: refuses a parameter reached
    through an alias (:func:`gradient_uses`) and one whose layer runs but whose gradient
    does not reach the output, which no strategy would compute."""
    with torch.enable_grad(), modules_run(module, parameters) as ran:
        leaves = requiring_grad(params)
        scores = first_scores(functional_call(module, (leaves, frozen), (x.clone(),)))
    if isinstance(scores, torch.Tensor):
        uses = gradient_uses(scores, leaves, module)
        refuse_cut_off([n for n in parameters if not uses.get(n)], ran)


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
