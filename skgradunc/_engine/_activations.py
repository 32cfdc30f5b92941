"""Per-sample gradients with respect to chosen layers' outputs (activation gradients):
one forward with the layers tapped, one batched backward per loss.

In evaluation mode a network treats every sample of a batch on its own, so the gradient
of the *sum* of the per-sample losses with respect to sample i's activation is sample
i's own gradient: no per-sample machinery is needed (unlike the weights' gradients,
which the batch sums). :func:`check_per_sample` verifies that premise on the probe's
samples at fit. The user's module is never changed: hooks are removed on exit, weights
are used as they are and nothing is written to ``.grad`` (gradients are taken with
respect to a private leaf of the input).

Each layer's gradient is the one of its output *as the layer returned it*: a tensor hook
registered in the forward hook, before any later in-place change (a ``ReLU(inplace=True)``
after a convolution), receives that gradient (PyTorch's rule for hooks on tensors
modified in place); the activation is kept as a copy for the same reason.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.func import functional_call

from .._gpu_numerics import gpu_numerics
from .._network import evaluation_mode
from .._outputs import class_logits
from ._audit import UnsupportedNetworkError, autograd_on, weights_on_device

__all__ = ["Tapped", "layer_gradients", "check_layers", "check_per_sample", "map_chunks",
           "layer_output_shapes"]


@dataclass
class Tapped:
    """What a forward left at one layer: its output (a copy) and, per loss, the gradient
    of that loss's batch sum with respect to it."""

    activation: torch.Tensor = None
    gradients: list = field(default_factory=list)
    calls: int = 0
    output: torch.Tensor = None   # the live output, for a loss that reads it


def check_layers(module, layers):
    """The named submodules of ``layers`` (a list of names of ``module.named_modules()``),
    refusing an unknown name, a repeated one, or an empty list."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty: name at least one layer whose output is tapped")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers lists a layer twice: {layers}")
    named = dict(module.named_modules())
    unknown = [name for name in layers if name not in named or name == ""]
    if unknown:
        known = [name for name in named if name][:12]
        raise ValueError(f"no layer named {unknown} in {type(module).__name__}; its layers "
                         f"include {known}{' ...' if len(named) > 13 else ''}")
    return layers


@contextmanager
def _taps(module, layers):
    taps = {name: Tapped() for name in layers}
    handles = []

    def hook(name):
        def tap(layer, inputs, output):
            tapped = taps[name]
            tapped.calls += 1
            if tapped.calls > 1:
                return   # refused after the forward, naming the layer
            if not isinstance(output, torch.Tensor):
                raise UnsupportedNetworkError(
                    f"layer {name!r} returns {type(output).__name__}, not a tensor; tap a "
                    "layer (or a submodule of it) that returns one tensor")
            tapped.activation = output.detach().clone()
            tapped.output = output
            if output.requires_grad:
                output.register_hook(lambda grad: tapped.gradients.append(grad.detach()))
        return tap

    try:
        for name in layers:
            handles.append(module.get_submodule(name).register_forward_hook(hook(name)))
        yield taps
    finally:
        for handle in handles:
            handle.remove()


def layer_gradients(module, weights, x, layers, losses, *, output_kind):
    """(logits, {layer: Tapped}) of the samples ``x``: each tapped layer's output and its
    per-sample gradient of every loss in ``losses``, the module run with ``weights``
    (every parameter and buffer, detached, on x's device: :func:`weights_on_device`).

    ``losses``: functions ``loss(logits, taps) -> (n,)`` per-sample losses (``logits``
    float64 (n, q); ``taps[name].output`` the live layer outputs), differentiated in
    order; ``Tapped.gradients[i]`` holds loss i's gradient. The module must be in
    evaluation mode (the caller's :func:`~skgradunc._network.evaluation_mode`).
    """
    with autograd_on(), _taps(module, layers) as taps:
        leaf = x.detach().requires_grad_(x.is_floating_point())
        if not leaf.requires_grad:   # token indices: the weights connect the layers
            weights = {k: w.detach().requires_grad_(w.is_floating_point())
                       for k, w in weights.items()}
        output = functional_call(module, weights,
                                 (leaf.clone() if leaf.requires_grad else leaf,))
        logits = class_logits(output, output_kind, len(x)).to(torch.float64)
        _refuse_unreached(taps, layers)
        values = [loss(logits, taps) for loss in losses]
        # the backward reaches every tapped output on its way to the input (or, for an
        # input autograd cannot take, such as token indices, to the weights)
        wrt = [leaf] if leaf.requires_grad else [w for w in weights.values()
                                                 if w.requires_grad]
        for i, value in enumerate(values):
            if value.requires_grad:
                torch.autograd.grad(value.sum(), wrt, retain_graph=i < len(values) - 1,
                                    allow_unused=True)
            for name, tapped in taps.items():   # a layer the loss does not reach: zeros
                if len(tapped.gradients) == i:
                    tapped.gradients.append(torch.zeros_like(tapped.activation))
        for tapped in taps.values():
            tapped.output = None   # frees the graph
        return logits.detach(), taps


def _refuse_unreached(taps, layers):
    for name in layers:
        tapped = taps[name]
        if tapped.calls == 0:
            raise UnsupportedNetworkError(
                f"layer {name!r} did not run in the network's forward; tap a layer the "
                "forward calls")
        if tapped.calls > 1:
            raise UnsupportedNetworkError(
                f"layer {name!r} runs {tapped.calls} times per forward (a shared module); "
                "its output is not one tensor per sample: tap a layer called once")
        if not tapped.output.requires_grad:
            raise UnsupportedNetworkError(
                f"the output of layer {name!r} is not connected to the input by autograd "
                "(integer inputs, a detach() or torch.no_grad() inside forward); its "
                "gradient cannot be taken")


def check_per_sample(module, weights, x, layers, losses, *, output_kind):
    """Refuses a network whose samples interact in a batch (what makes the batched
    backward per-sample): the gradients of the batch ``x`` (two samples or more) must
    match those of each sample alone. In float64 where the network runs in it: float32
    kernels chosen by batch size round differently, enough to flip a ReLU whose input is
    near zero and move a gradient by percents (measured on PaperCNN's conv1, digits run
    3); a network that builds float32 tensors inside its forward is checked in float32."""
    floating = {name: w.double() if w.is_floating_point() else w for name, w in weights.items()}
    try:
        _compare_batch_and_alone(module, floating, x.double(), layers, losses,
                                 output_kind=output_kind, rtol=1e-9)
    except RuntimeError as error:
        if isinstance(error, UnsupportedNetworkError):
            raise
        _compare_batch_and_alone(module, weights, x, layers, losses,
                                 output_kind=output_kind, rtol=1e-4)


def _compare_batch_and_alone(module, weights, x, layers, losses, *, output_kind, rtol):
    _, together = layer_gradients(module, weights, x, layers, losses, output_kind=output_kind)
    for i in range(min(len(x), 2)):
        _, alone = layer_gradients(module, weights, x[i:i + 1], layers, losses,
                                   output_kind=output_kind)
        for name in layers:
            for a, b in zip(together[name].gradients, alone[name].gradients):
                scale = b.abs().max().item() + 1e-30
                if (a[i:i + 1] - b).abs().max().item() > rtol * scale + 1e-12:
                    raise UnsupportedNetworkError(
                        f"the gradient at layer {name!r} of sample {i} differs in a batch "
                        "from the sample alone: the network's samples interact (a "
                        "normalisation over the batch in evaluation mode?); activation "
                        "gradients need a network that treats each sample on its own")


def map_chunks(module, samples, layers, losses, reduce, *, device, batch_size, output_kind,
               check=False):
    """``reduce(logits, taps)`` ((n, k) tensor) of every chunk of ``samples`` (a reader of
    :mod:`skgradunc._data`), joined: float64 numpy (n_samples, k). The module runs in
    evaluation mode (each submodule's flag given back), on a private copy of every chunk;
    ``check``: first :func:`check_per_sample` on the first two samples."""
    device = torch.device(device)
    parts = []
    # inside the caller's inference_mode too: the chunks and weights must be tensors
    # autograd can take
    with autograd_on(), evaluation_mode(module), gpu_numerics(device, module):
        _, weights = weights_on_device(module, (), device)
        if check:
            head = samples.head(2).to(device, copy=True)
            if len(head) > 1:
                check_per_sample(module, weights, head, layers, losses,
                                 output_kind=output_kind)
        for _, block, _ in samples.blocks(batch_size):
            x = block.to(device, copy=True)
            logits, taps = layer_gradients(module, weights, x, layers, losses,
                                           output_kind=output_kind)
            parts.append(reduce(logits, taps).detach().to(torch.float64).cpu())
    return torch.cat(parts).numpy()


def layer_output_shapes(module, x, layers, device):
    """The shape of each layer's output for one sample (``x[:1]``)."""
    device = torch.device(device)
    with autograd_on(), evaluation_mode(module), _taps(module, layers) as taps:
        _, weights = weights_on_device(module, (), device)
        functional_call(module, weights, (x[:1].to(device, copy=True),))
        return [tuple(taps[name].activation.shape[1:]) for name in layers]
