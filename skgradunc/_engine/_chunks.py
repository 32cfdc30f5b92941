"""The chunk loop: a plan applied to samples read block by block, each chunk's features
written as they come; memory does not grow with the number of samples."""

import warnings
from dataclasses import replace

import numpy as np
import torch
from torch.func import functional_call

from .._data import as_samples
from .._gpu_numerics import gpu_numerics
from .._network import evaluation_mode
from .._outputs import class_logits
from ._audit import NotPerLayer, autograd_on, weights_on_device
from ._features import FeatureAssembly
from ._loop import JOINED_ELEMENTS, OneSampleAtATime
from ._probe import STRATEGY_CLASSES

__all__ = ["compute_features"]


def compute_features(plan, module, samples, *, device, batch_size, max_memory=None,
                     progress=None):
    """Features of ``samples`` (a reader of :mod:`skgradunc._data`, or anything
    :func:`~skgradunc._data.as_samples` takes) by ``plan``, as float64 numpy.

    Blocks of the chunk size are read (ahead, in a thread, for inputs on the host) and
    each chunk goes to the device as a private copy: X is never changed, even by a
    network working in place on its input. On the CPU each chunk's features are written
    into the result as they are done; on a GPU they stay there until one copy back at the
    end. A chunk of one sample of a network of at most ``JOINED_ELEMENTS`` weights is
    computed by plain autograd (its batch gradient is its per-sample gradient: no
    per-sample machinery to pay for). Running out of GPU memory halves the chunk and
    retries it (with a warning), down to one sample. A use of a weight the probe's
    samples did not show (a branch only other inputs take) continues one sample at a time
    (with a warning). ``progress``: called
    with the number of samples of each chunk done."""
    with autograd_on():
        return _computed(plan, module, samples, torch.device(device), batch_size, max_memory,
                         progress)


def _computed(plan, module, samples, device, batch_size, max_memory, progress):
    if not hasattr(samples, "blocks"):
        samples = as_samples(samples)
    plan.check_parameters(module)
    params, frozen = weights_on_device(module, plan.parameters, device)
    weights = sum(params[name].numel() for name in plan.parameters)
    if plan.target == "expected":
        strategies = _Expected(plan, module, device, max_memory, weights)
        assemble = strategies
    else:
        strategies = _Strategies(plan, module, device, max_memory, weights)
        assemble = FeatureAssembly(plan)
    with evaluation_mode(module), gpu_numerics(device, module):
        chunk = strategies.chunk_size(batch_size)
        rows = _Rows(samples, device)
        first, distinct = None, False
        for start, block, _ in samples.blocks(chunk):
            if not distinct and len(block):
                first = block[0] if first is None else first
                distinct = bool((block != first).any())
            done = 0
            while done < len(block):
                x = block[done:done + chunk].to(device, copy=True)
                try:
                    computed = strategies.of(len(x)).summaries(params, frozen, x)
                    features = assemble(*computed, offset=start + done)
                except NotPerLayer as exc:
                    warnings.warn(f"{exc}, for the samples from {start + done} on; per-sample "
                                  "gradients are computed by autograd one sample at a time "
                                  "from here (exact, slower)", RuntimeWarning)
                    strategies.fall_back()
                    continue
                except torch.cuda.OutOfMemoryError:
                    if len(x) == 1:
                        raise
                    chunk = len(x) // 2
                    del x
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    warnings.warn(f"out of GPU memory; retrying with chunks of {chunk} samples "
                                  "(a smaller batch_size avoids the retry)", RuntimeWarning)
                    continue
                rows.add(features)
                done += len(x)
                if progress is not None:
                    progress(len(x))
    features = rows.result()
    if distinct:
        _warn_constant(features, plan.feature_names())
    return features


def _warn_constant(features, names):
    """A feature that does not vary over distinct inputs tells nothing about them (a layer
    that never runs, a saturated softmax, a detector scoring every input alike): say so."""
    constant = np.flatnonzero(features.max(axis=0) == features.min(axis=0))
    if len(constant):
        named = [names[j] for j in constant[:10]]
        warnings.warn(f"{len(constant)} feature(s) are constant over {len(features)} distinct "
                      f"inputs: {named}{' ...' if len(constant) > 10 else ''}; they carry no "
                      "information about them (a layer that never runs, a saturated "
                      "softmax, weights whose gradient is always zero)", UserWarning,
                      stacklevel=4)


class _Strategies:
    """The plan's strategy, made when a chunk first needs it, and for a chunk of one
    sample of a network of at most ``JOINED_ELEMENTS`` weights plain autograd: its batch
    gradient is its per-sample gradient, summarised in one joined pass (a larger network
    keeps its plan's factored forms)."""

    def __init__(self, plan, module, device, max_memory, weights):
        self.arguments = (plan, module, device, max_memory)
        self._planned = None
        self.single = (OneSampleAtATime(*self.arguments) if weights <= JOINED_ELEMENTS
                       else None)

    @property
    def planned(self):
        if self._planned is None:
            self._planned = STRATEGY_CLASSES[self.arguments[0].strategy](*self.arguments)
        return self._planned

    def fall_back(self):
        """One sample at a time from here (a use the probe's samples did not show)."""
        self._planned = OneSampleAtATime(*self.arguments)

    def chunk_size(self, batch_size):
        if self.arguments[0].strategy != "vmap":
            return batch_size   # the others bound their memory within a chunk
        return self.planned.chunk_size(batch_size)

    def of(self, n):
        return self.single if n == 1 and self.single is not None else self.planned


class _Expected:
    """The "expected" target (ExGrad): per chunk, the statistics at every class k,
    weighted by the network's p_k and summed, then the softmax features; a strategy and a
    feature assembly in one (``of(n).summaries`` gives the chunk's rows, called with
    them)."""

    def __init__(self, plan, module, device, max_memory, weights):
        self.plan, self.module = plan, module
        self.arguments = (module, device, max_memory, weights)
        self.per_class = {}
        self.softmax = FeatureAssembly(replace(plan, groups=(), statistics=(),
                                               include_network=False, target=0))

    def fall_back(self):
        for strategies, _ in self.per_class.values():
            strategies.fall_back()

    def _class(self, k):
        if k not in self.per_class:
            plan = replace(self.plan, target=k, softmax=())
            self.per_class[k] = (_Strategies(plan, *self.arguments), FeatureAssembly(plan))
        return self.per_class[k]

    def chunk_size(self, batch_size):
        return self._class(0)[0].chunk_size(batch_size)

    def of(self, n):
        return self

    def summaries(self, params, frozen, x):
        columns, scores = 0, None
        for k in range(self._n_classes(params, frozen, x)):
            strategies, assemble = self._class(k)
            summaries, scores = strategies.of(len(x)).summaries(params, frozen, x)
            rows = assemble(summaries, scores)
            logits = class_logits(scores, self.plan.output, len(x)).detach().double()
            columns = columns + torch.softmax(logits, dim=1)[:, k:k + 1] * rows
        return columns, scores

    def _n_classes(self, params, frozen, x):
        with torch.no_grad():
            out = functional_call(self.module, (params, frozen), (x[:1].clone(),))
        return class_logits(out, self.plan.output, 1).shape[1]

    def __call__(self, rows, scores, offset=0):
        if not self.plan.softmax:
            return rows
        return torch.cat([rows, self.softmax(None, scores, offset)], dim=1)


class _Rows:
    """The features, chunk by chunk. On the CPU they are written as they come into one
    host array of the expected number of rows (nothing else is held; grown by joining
    should more come, cut should fewer, as a DataLoader whose collate_fn drops samples
    may do); on a GPU they stay there, joined and copied back once at the end."""

    def __init__(self, samples, device):
        self.expected = samples.expected if device.type == "cpu" else None
        self.array, self.parts, self.filled = None, [], 0

    def add(self, features):
        features = features.to(torch.float64)
        end = self.filled + len(features)
        if self.expected is not None and end <= self.expected:
            if self.array is None:
                self.array = np.empty((self.expected, features.shape[1]), dtype=np.float64)
            self.array[self.filled:end] = features.numpy()
        else:
            if self.array is not None:   # more rows than expected
                self.parts.append(torch.from_numpy(self.array[:self.filled]))
                self.array, self.expected = None, None
            self.parts.append(features)
        self.filled = end

    def result(self):
        if self.array is not None:
            return self.array if self.filled == len(self.array) else \
                self.array[:self.filled].copy()
        return torch.cat(self.parts).cpu().numpy()
