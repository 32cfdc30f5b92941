"""Per-sample gradients of a loss at a chosen target, summarised batch by batch.

For every input x the gradient of a per-sample loss L(f(x; w)) with respect to
the trainable weights w is computed without touching the user's module: its
parameters are passed to :func:`torch.func.functional_call` as detached copies,
so ``.grad``, ``requires_grad`` and the weights stay as they are, and train/eval
flags are restored module by module afterwards. Networks of supported layers
(:mod:`skgradunc._layers`, exact type or the same forward, no hooks, each
weight used only in its layer's call) get one forward, one backward to the layer
outputs and per-layer products; anything else ``torch.func.vmap`` over ``grad``, and
what vmap cannot batch (nn.GRU) one sample at a time. The module's output is read as
class scores by :mod:`skgradunc._outputs`.
"""

import warnings
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from ._data import as_samples
from ._gpu_numerics import gpu_numerics
from ._outputs import NetworkOutputError, check_scores, class_logits, first_scores
from ._layers import LOCAL, choose_rule, rule_for
from .layer_gradients import block_budget, layer_summaries, replay_summaries, summarize_gradient
from .statistics import combine, finalize, softmax_features, zero_summary

__all__ = ["TARGETS", "STRATEGIES", "target_loss", "resolve_groups", "evaluation_mode",
           "GradientFeatureEngine"]

TARGETS = ("predicted", "all_ones", "all_ones_sigmoid", "uniform")
# per-layer products; vmap over the whole network; one sample at a time (what vmap cannot
# batch, e.g. nn.GRU): all exact, in decreasing speed
STRATEGIES = ("per-layer", "vmap", "loop")


def target_loss(logits, target, temperature=1.0):
    """Per-sample loss (shape (n,)) of logits (n, q) at ``target``.

    ``"predicted"`` (Oberdiek et al. 2018)
        Negative log-likelihood at the predicted class: -log p_argmax.
    ``"all_ones"`` (Lee & AlRegib 2020)
        Binary cross-entropy between the softmax outputs and the all-ones
        confounding label, summed over the classes: -sum_k log p_k. The paper
        says "binary cross-entropy" without naming the output nonlinearity;
        its only public implementation (pytorch-ood's ``GradUncertainty``,
        which the authors' 2021 follow-up restates) applies it to the softmax,
        and so does this target (logit gradient q p - 1).
    ``"all_ones_sigmoid"``
        The same label read with per-class sigmoids:
        sum_k -log sigmoid(z_k) = sum_k softplus(-z_k) (logit gradient
        sigmoid(z) - 1); needs logits.
    ``"uniform"`` (GradNorm, Huang et al. 2021)
        Cross-entropy between the uniform distribution and the softmax of the
        logits divided by ``temperature`` (GradNorm's T),
        -(1/q) sum_k log softmax_k(z / T); it differs from KL(u || p) by the
        constant log q, so the gradients are identical.

    The loss is computed in float64 whatever the logits' precision. Its logit gradient
    at the predicted class, p - 1, cancels: in float32 a confident sample's 1 - p keeps
    only eps / (1 - p) of relative precision (6 % at p = 1 - 1e-6, nothing at p = 1 -
    1e-8), and every weight gradient inherits that error. In float64 the gradient reaches
    the network at float32's own relative precision.
    """
    if logits.dtype != torch.float64:
        logits = logits.to(torch.float64)
    if target == "predicted":
        log_p = torch.log_softmax(logits, dim=-1)
        predicted = logits.argmax(dim=-1, keepdim=True)
        return -log_p.gather(-1, predicted).squeeze(-1)
    if target == "all_ones":
        return -torch.log_softmax(logits, dim=-1).sum(dim=-1)
    if target == "all_ones_sigmoid":
        return torch.nn.functional.softplus(-logits).sum(dim=-1)
    if target == "uniform":
        return -torch.log_softmax(logits / temperature, dim=-1).mean(dim=-1)
    raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")


def trainable_parameters(module):
    """Names of the parameters that gradients are taken for.

    Those with ``requires_grad``; a module frozen entirely (none requires
    grad, e.g. prepared for inference) counts as all of its weights.
    """
    named = list(module.named_parameters())
    if not named:
        raise ValueError(f"{type(module).__name__} has no parameters to take gradients of")
    trainable = [name for name, p in named if p.requires_grad]
    return trainable or [name for name, _ in named]


def _layer_groups(trainable):
    groups = OrderedDict()
    for name in trainable:
        layer = name.rpartition(".")[0] or "module"
        groups.setdefault(layer, []).append(name)
    return groups


def resolve_groups(module, groups="layer"):
    """Map group names to the parameter names they cover, in module order.

    Parameters
    ----------
    module : torch.nn.Module
    groups : "layer", "parameter", list of str or dict of str -> list of str
        ``"layer"``: one group per layer (a module's weight and bias together,
        the paper's "layerwise"; a top-level parameter belongs to "module").
        ``"parameter"``: one group per parameter tensor (``conv1.weight``...).
        A list of layer or parameter names: one group each. A dict: group name
        -> list of layer or parameter names. A named layer or parameter whose weights
        are all frozen (``requires_grad=False``) is taken as well: gradients can be
        taken with respect to frozen weights.
    """
    trainable = trainable_parameters(module)
    everything = [name for name, _ in module.named_parameters()]
    if isinstance(groups, str):
        if groups == "layer":
            return _layer_groups(trainable)
        if groups == "parameter":
            return OrderedDict((name, [name]) for name in trainable)
        raise ValueError(
            f"groups must be 'layer', 'parameter', a list or a dict of layer/parameter "
            f"names; got {groups!r}")
    if isinstance(groups, dict):
        spec = list(groups.items())
    else:
        spec = [(name, [name]) for name in groups]
    if not spec:
        raise ValueError("groups is empty: name at least one layer or parameter")
    layers = sorted(set(_layer_groups(trainable)))
    resolved = OrderedDict()
    for group, members in spec:
        if group in ("network", "softmax") or "__" in str(group):
            raise ValueError(f"group name {group!r} is reserved or contains '__'")
        if isinstance(members, str):
            members = [members]
        names = []
        for member in members:
            # a name whose parameters are all frozen is taken as named: gradients can be
            # taken with respect to frozen weights (GradNorm's last layer)
            found = (_members(trainable, member) or _members(everything, member))
            if not found:
                raise ValueError(
                    f"unknown layer or parameter {member!r}; layers with trainable "
                    f"parameters: {layers}")
            names.extend(p for p in found if p not in names)
        resolved[str(group)] = names
    return resolved


def _members(names, member):
    """The parameter names that layer or parameter name ``member`` covers."""
    return [p for p in names if p == member or p.startswith(member + ".")
            or member == "module" and "." not in p]


def gradient_parameters(module, groups):
    """The parameters whose per-sample gradients are computed, in module order: the
    trainable ones (:func:`trainable_parameters`) and any frozen one that ``groups``
    (from :func:`resolve_groups`) names."""
    named = {name for members in groups.values() for name in members}
    trainable = set(trainable_parameters(module))
    return [name for name, _ in module.named_parameters()
            if name in trainable or name in named]


@contextmanager
def evaluation_mode(module):
    """Put every submodule in eval mode and give each its own flag back after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


def _parameter_units(module, trainable):
    """Parameter name -> (its unit, its name there): the module whose rule computes its
    per-sample gradient, its layer or a composite unit above it (:func:`_composite_unit`)."""
    units = {}
    for name in trainable:
        unit = _composite_unit(module, name)
        unit = name.rpartition(".")[0] if unit is None else unit
        units[name] = (unit, name[len(unit) + 1:] if unit else name)
    return units


def _per_layer_modules(module, trainable, units):
    """Layer name -> (module, rule) when every trainable parameter belongs to a layer
    with a rule for it (:func:`skgradunc._layers.choose_rule`: the registered rule exact
    for that instance, Linear, Conv1d/2d, BatchNorm, LayerNorm, Embedding; else the
    layer-local fallback, for a layer whose own weights are all it holds) and held by
    that layer alone: their per-sample gradients come from the layer's input and output
    gradient. None otherwise (e.g. tied weights, a weight of a module that is not
    called; vmap handles them). A weight also used outside its layer's call, or a layer
    called by keyword or with several inputs, shows in the autograd graph of each
    chunk's forward (:meth:`GradientFeatureEngine._check_uses`)."""
    if _global_forward_hooks():
        return None   # they may replace any layer's output
    owners = {}
    for _, sub in module.named_modules(remove_duplicate=False):
        for p in sub.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    if any(owners[id(p)] > 1 for name, p in module.named_parameters() if name in trainable):
        return None
    names = {}
    for name in trainable:
        unit, param = units[name]
        names.setdefault(unit, []).append(param)
    layers, broadcast = {}, []
    for layer_name, params in names.items():
        layer = module.get_submodule(layer_name)
        rule = choose_rule(layer, params)
        if rule is not None:
            layers[layer_name] = (layer, rule)
        elif all(_broadcast_shaped(layer, param) for param in params):
            prefix = f"{layer_name}." if layer_name else ""
            broadcast += [prefix + param for param in params]
        else:
            return None
    return layers, broadcast


def _composite_unit(module, name):
    """The outermost module above parameter ``name`` whose rule takes its children's
    weights too (nn.MultiheadAttention and its out_proj), or None."""
    parts = name.split(".")
    for k in range(len(parts) - 1):
        prefix = ".".join(parts[:k])
        rule = rule_for(module.get_submodule(prefix))
        if rule is not None and rule.composite:
            return prefix
    return None


def _broadcast_shaped(layer, param):
    """A weight of a module whose children hold weights, with a leading dimension of 1
    (a ViT's class token, its position embedding): a candidate for the per-sample
    gradient of a copy with one row per sample (checked in :meth:`probe`)."""
    weight = getattr(layer, param, None)
    return (isinstance(weight, torch.Tensor) and weight.dim() >= 2 and weight.shape[0] == 1
            and any(True for c in layer.children() for _ in c.parameters()))


def _global_forward_hooks():
    from torch.nn.modules import module as torch_module
    return any(getattr(torch_module, name, None) for name in
               ("_global_forward_hooks", "_global_forward_pre_hooks"))


class UnsupportedNetworkError(RuntimeError):
    """Per-sample gradients of this network cannot be computed (the network itself runs)."""


def _gradient_uses(scores, leaves, module):
    """How often each weight's gradient is taken: the edges of ``scores``' autograd graph
    into each leaf of ``leaves`` (name -> tensor), by name. Every use that adds to the
    gradient is an edge, whatever computed it (a torch function, a custom
    autograd.Function, an extension); a use that adds nothing (a metadata read, under
    no_grad) is none. A parameter of ``module`` reached as itself, not as the leaf
    functional_call swapped in (an alias in a plain list or dict), is refused: its
    gradient would be missing."""
    names = {id(tensor): name for name, tensor in leaves.items()}
    originals = {id(p): name for name, p in module.named_parameters(remove_duplicate=False)}
    counts, seen, stack = {}, set(), [scores.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for following, _ in node.next_functions:
            variable = getattr(following, "variable", None)   # AccumulateGrad: a leaf
            if variable is None:
                stack.append(following)
            elif id(variable) in names:
                counts[names[id(variable)]] = counts.get(names[id(variable)], 0) + 1
            elif id(variable) in originals:
                raise UnsupportedNetworkError(
                    f"the forward uses the parameter {originals[id(variable)]!r} through a "
                    "reference that torch.func.functional_call cannot swap (an alias kept in "
                    "a plain list, dict or closure), so its gradient would be missing; use "
                    "the registered attribute (or register the alias as a module)")
    return counts


@contextmanager
def _modules_run(module, parameter_names):
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


def _refuse_cut_off(unreached, ran):
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


def _per_sample_copy(weight, n):
    """A weight of leading dimension 1 repeated to n rows, a leaf of its own."""
    return weight.detach().expand(n, *weight.shape[1:]).clone().requires_grad_()


class _NotPerLayer(Exception):
    """A chunk's forward showed that the per-layer rules do not cover this network."""


def _requiring_grad(params):
    """Fresh leaves of the weights that autograd tracks (the user's tensors untouched)."""
    return {k: v.detach().requires_grad_() for k, v in params.items()}


def _overwritten(calls):
    """(layer, call, "input"/"output") of the saved tensors changed since they were saved."""
    return frozenset((name, call, kind) for name, records in calls.items()
                     for call, (inp, out, version_in, version_out) in enumerate(records)
                     for kind, changed in (("input", inp._version != version_in),
                                           ("output", out._version != version_out))
                     if changed)


class GradientFeatureEngine:
    """Compute gradient statistics and softmax features for chunks of inputs.

    Parameters
    ----------
    module : torch.nn.Module returning class scores
    target : one of TARGETS
    groups : OrderedDict from :func:`resolve_groups`
    statistics : sequence of statistic names
    include_network : bool
        Add the statistics of the whole gradient (every trainable weight).
    softmax : sequence of softmax feature names (may be empty)
    device : torch.device
    overwritten : iterable of (layer, call, "input"/"output"), optional
        Saved tensors known to be overwritten by in-place operations (:meth:`probe`);
        found anew otherwise.
    output : {"logits", "probabilities", "log_probabilities"}, default="logits"
        What the module returns (:mod:`skgradunc._outputs`).
    output_guessed : bool, default=False
        Nobody said what the module returns: refuse the ambiguous outputs
        (:func:`~skgradunc._outputs.check_scores`).
    sigmoids : str or None, default=None
        Who says the outputs are per-class sigmoids
        (:func:`~skgradunc._outputs.sigmoid_outputs`): several are refused.
    strategy : one of STRATEGIES or None
        Found by :meth:`probe` (run on the first chunk when None).
    """

    def __init__(self, module, target, groups, statistics, include_network, softmax,
                 device, overwritten=(), *, output="logits", output_guessed=False,
                 sigmoids=None, strategy=None, temperature=1.0):
        self.module = module
        self.target = target
        self.temperature = temperature
        self.groups = groups
        self.statistics = tuple(statistics)
        self.include_network = include_network
        self.softmax = tuple(softmax)
        self.device = torch.device(device)
        self.output = output
        self.output_guessed = output_guessed
        self.sigmoids = sigmoids
        # every parameter whose gradient is taken; the network's statistics cover the
        # trainable ones, groups may also name frozen ones
        self.trainable = gradient_parameters(module, groups)
        self._network_parameters = set(trainable_parameters(module))
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        self._units = _parameter_units(module, self.trainable)
        plan = _per_layer_modules(module, self.trainable, self._units)
        self.layers, self.broadcast = plan if plan is not None else (None, [])
        if strategy == "per-layer" and self.layers is None:
            raise ValueError(
                f"the network changed since fit: {type(module).__name__}'s layers no longer all "
                "qualify for exact per-layer products (a hook, a parametrisation, a replaced "
                "forward?); call fit again")
        if strategy is not None and strategy != "per-layer":
            self.layers = None
        self.strategy = strategy or ("per-layer" if self.layers is not None else "vmap")
        self._probed = strategy is not None
        self.overwritten = frozenset(overwritten)
        self._membership_mask = None
        self._per_call = {}

    def feature_names(self):
        names = [f"{g}__{s}" for g in self.groups for s in self.statistics]
        if self.include_network:
            names += [f"network__{s}" for s in self.statistics]
        names += [f"softmax__{f}" for f in self.softmax]
        return names

    def _weights_on_device(self):
        trainable = set(self.trainable)
        params, frozen = {}, {}
        for name, p in self.module.named_parameters():
            (params if name in trainable else frozen)[name] = p.detach().to(self.device)
        frozen.update({name: b.detach().to(self.device)
                       for name, b in self.module.named_buffers()})
        return params, frozen

    def probe(self, x, max_memory=None):
        """Settle how this network's gradients are computed, on a sample or two ``x``
        (before the first chunk): from the per-layer rules to vmap when a weight is used
        outside its layer's call, and down the exact strategies, with a warning, when one
        fails where the network itself runs (vmap cannot batch nn.GRU: one sample at a
        time); saved tensors that in-place operations overwrite are found (so chunks
        isolate them from the start); the output is checked. ``max_memory`` bounds the
        gradients held at once, as in :meth:`transform`. Returns the strategy."""
        params, frozen = self._weights_on_device()
        x = x.to(self.device, copy=True)
        failures = []
        with evaluation_mode(self.module), gpu_numerics(self.device, self.module):
            self._check_graph(params, frozen, x)
            if self.strategy == "per-layer" and self.broadcast:
                try:
                    self._check_broadcast(params, frozen, x)
                except _NotPerLayer:
                    self._use("vmap")
            while True:
                try:
                    self._features(params, frozen, x, max_memory)
                    break
                except _NotPerLayer:
                    self._use("vmap")
                except (UnsupportedNetworkError, NetworkOutputError,
                        torch.cuda.OutOfMemoryError):
                    raise
                except Exception as exc:  # noqa: BLE001 - the next strategy tells whose fault
                    failures.append((self.strategy, exc))
                    self._next_strategy(params, frozen, x, failures)
        self._probed = True
        return self.strategy

    def _check_graph(self, params, frozen, x):
        """One forward with autograd, before any strategy: refuses a parameter reached
        through an alias (:func:`_gradient_uses`) and one whose layer runs but whose
        gradient does not reach the output, which no strategy would compute."""
        with torch.enable_grad(), _modules_run(self.module, self.trainable) as ran:
            leaves = _requiring_grad(params)
            scores = first_scores(functional_call(self.module, (leaves, frozen), (x.clone(),)))
        if isinstance(scores, torch.Tensor):
            uses = _gradient_uses(scores, leaves, self.module) if scores.grad_fn else {}
            _refuse_cut_off([n for n in self.trainable if not uses.get(n)], ran)

    def _check_broadcast(self, params, frozen, x):
        """The weights of ``self.broadcast`` get their per-sample gradients from a copy
        with one row per sample; exact when every use broadcasts that row over the batch
        (``class_token.expand(n, -1, -1)``, ``x + pos_embedding``). Checked here: the copy
        gives the same outputs, and changing sample k's row changes no other sample's
        output; else raises :class:`_NotPerLayer`."""
        if len(x) < 2:   # two rows to tell apart, even from one sample
            x = torch.cat([x, x])
        n = len(x)

        def scores(rows):
            with torch.no_grad():
                out = functional_call(self.module, ({**params, **rows}, frozen), (x.clone(),))
            return first_scores(out)
        try:
            rows = {name: _per_sample_copy(params[name], n).detach()
                    for name in self.broadcast}
            plain, same = scores({}), scores(rows)
            if not torch.allclose(plain, same, rtol=1e-5, atol=1e-6):
                raise _NotPerLayer("a per-sample copy of the broadcast weights changes the "
                                   "outputs")
            for k in range(n):
                moved = {name: row.clone() for name, row in rows.items()}
                for row in moved.values():
                    row[k] += 1.0
                others = [j for j in range(n) if j != k]
                if not torch.allclose(scores(moved)[others], same[others], rtol=1e-5,
                                      atol=1e-6):
                    raise _NotPerLayer(f"the weights {self.broadcast} mix the samples")
        except _NotPerLayer:
            raise
        except Exception as exc:  # noqa: BLE001 - a use that does not broadcast that row
            raise _NotPerLayer(f"the weights {self.broadcast} are not used row by row: "
                               f"{_first_line(exc)}") from exc

    def _use(self, strategy):
        self.strategy = strategy
        if strategy != "per-layer":
            self.layers = None

    _NEXT = {"per-layer": "vmap", "vmap": "loop"}
    _DESCRIBED = {"per-layer": "exact per-layer products", "vmap": "torch.func.vmap",
                  "loop": "autograd one sample at a time"}

    def _next_strategy(self, params, frozen, x, failures):
        """A strategy failed (``failures``: (strategy, error) so far): an error of the
        network itself is raised as it is (the input's fault); else the next exact
        strategy is taken, with a warning, or none is left."""
        with torch.no_grad():
            functional_call(self.module, (params, frozen), (x.clone(),))
        failed, error = failures[-1]
        reasons = "; ".join(f"{self._DESCRIBED[s]}: {_first_line(e)}" for s, e in failures)
        name = type(self.module).__name__
        if failed not in self._NEXT:
            raise UnsupportedNetworkError(
                f"per-sample gradients of {name} could not be computed ({reasons})") from error
        self._use(self._NEXT[failed])
        warnings.warn(
            f"{self._DESCRIBED[failed]} failed for {name} ({_first_line(error)}); per-sample "
            f"gradients are computed by {self._DESCRIBED[self.strategy]} instead: exact, but "
            "slower", RuntimeWarning, stacklevel=4)

    def _features(self, params, frozen, x, max_memory):
        summaries = self._summary_function(max_memory)
        return self._chunk_features(*summaries(params, frozen, x.clone()))

    def _summary_function(self, max_memory):
        """(params, frozen, x) -> ({parameter name: summary (n, 9)}, class scores)."""
        if self.strategy == "per-layer":
            return lambda params, frozen, x: self._per_layer_summaries(
                params, frozen, x, max_memory)
        if self.strategy == "vmap":
            gradients = vmap(self._sample_gradient_function(), in_dims=(None, None, 0))

            def summaries(params, frozen, x):
                grads, scores = gradients(params, frozen, x)
                return self.summarize_gradients(grads), scores
            return summaries
        return self._one_sample_at_a_time

    def _one_sample_at_a_time(self, params, frozen, x):
        """Plain autograd, one sample at a time: whatever autograd can differentiate
        (custom autograd.Functions, recurrent layers), each sample's gradient summarised
        at once, so memory is one sample's gradient."""
        parts, scores = [], []
        with torch.enable_grad():
            leaves = _requiring_grad(params)
            wanted = [leaves[name] for name in self.trainable]
            for sample in x:
                with _modules_run(self.module, self.trainable) as ran:
                    raw = functional_call(self.module, (leaves, frozen), (sample[None],))
                loss = target_loss(class_logits(raw, self.output, 1), self.target,
                                   self.temperature).sum()
                grads = torch.autograd.grad(loss, wanted, allow_unused=True)
                # a layer that did not run has a zero gradient (as in vmap); one that ran
                # but does not reach the loss is refused
                _refuse_cut_off([n for n, g in zip(self.trainable, grads) if g is None], ran)
                parts.append(self.summarize_gradients(
                    {name: (torch.zeros_like(leaves[name]) if g is None else g)[None]
                     for name, g in zip(self.trainable, grads)}))
                scores.append(first_scores(raw).detach()[0])
        return ({name: torch.cat([p[name] for p in parts]) for name in self.trainable},
                torch.stack(scores))

    def summarize_gradients(self, grads):
        """Summaries of materialised per-sample gradients {parameter name: (n, ...)}."""
        return {name: summarize_gradient(grads[name]) for name in self.trainable}

    def _record_calls(self, params, frozen, x):
        """Forward with hooks saving each layer's input and output; returns the module's
        output and the calls. Those that in-place operations overwrite
        (``self.overwritten``: (layer, call, "input"/"output")) are isolated: the layer
        gets a private copy of its input, the rest of the network a copy of its output.
        A call with anything but one tensor (``layer(input=x)``, ``layer(x, mask)``) or
        returning anything but a tensor is not recorded, and so fails
        :meth:`_check_uses`."""
        calls = {name: [] for name in self.layers}
        overwritten = self.overwritten

        def recorder(name):
            def hook(layer, args, kwargs, output):
                if (len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor)
                        or not isinstance(output, torch.Tensor)):
                    return None
                call = len(calls[name])
                saved = args[0].detach()
                if (name, call, "input") in overwritten:
                    saved = saved.clone()
                calls[name].append((saved, output, saved._version, output._version))
                return output.clone() if (name, call, "output") in overwritten else None
            return hook

        def replayer(name, rule):
            def hook(layer, args, kwargs, output):
                replay = rule.record(layer, args, kwargs, output)
                if replay is None:
                    return None
                calls[name].append(replay)
                # the rest of the network gets copies: in-place changes of them leave
                # the recorded outputs as they were
                if isinstance(output, tuple):
                    return tuple(o.clone() if isinstance(o, torch.Tensor) else o
                                 for o in output)
                return output.clone()
            return hook

        handles = [layer.register_forward_hook(
            replayer(name, rule) if rule.composite else recorder(name), with_kwargs=True)
            for name, (layer, rule) in self.layers.items()]
        try:
            output = functional_call(self.module, (params, frozen), (x,))
        finally:
            for handle in handles:
                handle.remove()
        return output, calls

    def _layer_tensors(self, name, params, frozen):
        """The parameters and buffers of layer ``name`` (its children's included) on the
        device, by their names in the layer."""
        prefix = f"{name}." if name else ""
        return {full[len(prefix):]: t for tensors in (params, frozen)
                for full, t in tensors.items() if full.startswith(prefix)}

    def _uses_per_call(self, name, calls, params, frozen):
        """{parameter: edges of the autograd graph into it} in one call of layer
        ``name``: one for a rule's layer; for the layer-local fallback, counted once on
        the layer alone, re-run on its first recorded input."""
        layer, rule = self.layers[name]
        if not (rule is LOCAL or rule.composite) or not calls[name]:
            return {}
        if name not in self._per_call:
            tensors = self._layer_tensors(name, params, frozen)
            own = {p: tensors.pop(p) for p in rule.parameters(layer)}
            with torch.enable_grad():
                leaves = _requiring_grad(own)
                if rule.composite:
                    replay = calls[name][0]
                    out = functional_call(layer, (leaves, tensors), (), replay.arguments)
                    outs = out if isinstance(out, tuple) else (out,)
                    out = sum(o.sum() for o in outs
                              if isinstance(o, torch.Tensor) and o.grad_fn is not None)
                else:
                    out = functional_call(layer, (leaves, tensors), (calls[name][0][0][:1],))
            uses = isinstance(out, torch.Tensor) and out.grad_fn is not None
            self._per_call[name] = _gradient_uses(out, leaves, layer) if uses else {}
        return self._per_call[name]

    def _check_uses(self, scores, leaves, calls, frozen):
        """Each weight's gradient must come from its layer's recorded calls alone (for a
        rule's layer one edge of the autograd graph per call; for the layer-local
        fallback as many as the layer alone has), or the per-layer gradients would miss
        a use (``F.linear(h, self.embed.weight)`` elsewhere, a layer called by keyword):
        raises :class:`_NotPerLayer` naming them."""
        uses = _gradient_uses(scores, leaves, self.module)
        other = []
        for name in self.trainable:
            if name in self.broadcast:
                continue   # every use goes through its per-sample copy
            unit, param = self._units[name]
            per_call = self._uses_per_call(unit, calls, leaves, frozen).get(param, 1)
            if uses.get(name, 0) != len(calls[unit]) * per_call:
                other.append(name)
        if other:
            raise _NotPerLayer(f"weights whose gradient has other uses than their layer's "
                               f"recorded calls: {other}")

    def _forward(self, params, frozen, x):
        """Output and recorded calls, redone once with isolation if an in-place operation
        overwrote a saved tensor not yet known to be (later chunks isolate it at once).
        The first pass gets a copy of x: the module may change its input in place."""
        output, calls = self._record_calls(params, frozen, x.clone())
        found = _overwritten({name: records for name, records in calls.items()
                              if not self.layers[name][1].composite})
        if found:
            self.overwritten = self.overwritten | found
            output, calls = self._record_calls(params, frozen, x)
        return output, calls

    def _per_layer_summaries(self, params, frozen, x, max_memory):
        """One batched forward, one backward to the layer outputs, then each layer's
        per-sample gradients built and summarised block by block, never all at once."""
        with torch.enable_grad():
            leaves = _requiring_grad(params)
            for name in self.broadcast:   # one row per sample: its gradient, per sample
                leaves[name] = _per_sample_copy(leaves[name], len(x))
            output, calls = self._forward(leaves, frozen, x)
            logits = class_logits(output, self.output, len(x))
            self._check_uses(first_scores(output), leaves, calls, frozen)
            outputs = [out for name, (_, rule) in self.layers.items() for call in calls[name]
                       for out in (call.outputs if rule.composite else call[1:2])]
            outputs += [leaves[name] for name in self.broadcast]
            loss = target_loss(logits, self.target, self.temperature).sum()
            grads = torch.autograd.grad(loss, outputs,
                                        allow_unused=True)
            # an output that does not reach the loss (attention weights not used) has none
            grad_outputs = iter(torch.zeros_like(o) if g is None else g
                                for o, g in zip(outputs, grads))
        summaries, budget = {}, block_budget(max_memory, self.device)
        for name, (layer, rule) in self.layers.items():
            if rule.composite:
                records = [(call, [next(grad_outputs) for _ in call.outputs])
                           for call in calls[name]]
            else:
                records = [(inp, next(grad_outputs)) for inp, _, _, _ in calls[name]]
            calls[name] = None  # let this layer's saved tensors go once summarised
            prefix = f"{name}." if name else ""
            if not records:   # never called (an auxiliary head in eval mode): zero gradient
                for param, weight in layer.named_parameters(recurse=rule.composite):
                    summaries[prefix + param] = zero_summary(len(x), weight.numel(), x.device)
                continue
            tensors = self._layer_tensors(name, params, frozen)
            summarised = (replay_summaries(layer, rule, records, tensors, budget, len(x))
                          if rule.composite else
                          layer_summaries(layer, records, budget, rule, tensors))
            for param, summary in summarised.items():
                summaries[prefix + param] = summary
        for name in self.broadcast:
            summaries[name] = summarize_gradient(next(grad_outputs))
        scores = first_scores(output)
        return summaries, scores.detach()

    def _sample_gradient_function(self):
        """(params, frozen, one sample) -> (gradient {name: tensor}, its class scores)."""
        module, target, output = self.module, self.target, self.output
        temperature = self.temperature

        def loss(params, frozen, x):
            raw = functional_call(module, (params, frozen), (x.unsqueeze(0),))
            scores = first_scores(raw)
            return (target_loss(class_logits(raw, output, 1), target, temperature).sum(),
                    scores.squeeze(0))

        return grad(loss, has_aux=True)

    def _membership(self, device):
        """(groups [+ network], parameters) mask of which parameters form each group,
        made once per device (no host-to-device copy per chunk)."""
        if self._membership_mask is None or self._membership_mask.device != device:
            rows = [[p in names for p in self.trainable] for names in self.groups.values()]
            if self.include_network:
                rows.append([p in self._network_parameters for p in self.trainable])
            self._membership_mask = torch.tensor(rows, dtype=torch.bool, device=device)
        return self._membership_mask

    def _chunk_features(self, summaries, scores, offset=0):
        # the class scores are checked (NaN, probabilities that are not) before use
        check_scores(scores, self.output, self.output_guessed, offset, sigmoids=self.sigmoids)
        # one summary per parameter tensor; groups and the network combine them exactly
        columns = []
        if self.statistics:
            per_parameter = torch.stack([summaries[name] for name in self.trainable])
            groups = combine(per_parameter, self._membership(per_parameter.device))
            stats = finalize(groups, self.statistics)                    # (groups, n, k)
            columns.append(stats.transpose(0, 1).flatten(1))
        if self.softmax:
            logits = class_logits(scores, self.output, len(scores))
            columns.append(softmax_features(logits.detach().to(torch.float64), self.softmax))
        return torch.cat(columns, dim=1)

    # vmap holds a chunk's per-sample gradients of every weight plus temporaries of the
    # same size (measured ~1.8x the parameters' bytes per sample on ResNet-18); 3x leaves
    # a margin.
    BYTES_PER_MATERIALISED_PARAMETER = 3

    def chunk_size(self, batch_size, max_memory=None):
        """Samples per chunk: ``batch_size``; on the vmap path shrunk so that the
        per-sample gradients held at once stay within ``max_memory`` bytes (None: no
        bound). The per-layer path bounds them itself, layer by layer and block by block
        (:func:`sample_block`), and the loop holds one sample's, so their chunks keep
        ``batch_size``."""
        if max_memory is None or self.strategy != "vmap":
            return batch_size
        trainable = set(self.trainable)
        materialised = sum(p.numel() * p.element_size()
                           for name, p in self.module.named_parameters() if name in trainable)
        per_sample = self.BYTES_PER_MATERIALISED_PARAMETER * max(materialised, 1)
        return max(1, min(batch_size, int(max_memory // per_sample)))

    def transform(self, samples, batch_size, max_memory=None, progress=None):
        """Features of ``samples`` (a reader of :mod:`skgradunc._data`, or anything
        :func:`~skgradunc._data.as_samples` takes) as float64 numpy.

        Blocks of the chunk size are read (ahead, in a thread, for inputs on the host) and
        each chunk goes to the device as a private copy: X is never changed, even by a
        network working in place on its input. Memory does not grow with the number of
        samples, but for the result: on the CPU each chunk's features are written into it
        as they are done; on a GPU they stay there until one copy back at the end.
        Running out of GPU memory halves the chunk and retries it (with a warning), down
        to one sample. ``progress``: called with the number of samples of each chunk
        done."""
        if not hasattr(samples, "blocks"):
            samples = as_samples(samples)
        params, frozen = self._weights_on_device()
        with evaluation_mode(self.module), gpu_numerics(self.device, self.module):
            if not self._probed:
                self.probe(samples.head(2), max_memory)
            summaries = self._summary_function(max_memory)
            chunk = self.chunk_size(batch_size, max_memory)
            rows = _Rows(samples, self.device)
            for start, block, _ in samples.blocks(chunk):
                done = 0
                while done < len(block):
                    x = block[done:done + chunk].to(self.device, copy=True)
                    try:
                        features = self._chunk_features(*summaries(params, frozen, x),
                                                        offset=start + done)
                    except _NotPerLayer as exc:
                        # a use the probe's samples did not show: a branch only other
                        # inputs take, data-dependent control flow vmap cannot batch either
                        warnings.warn(f"{exc}, for the samples from {start + done} on; "
                                      "per-sample gradients are computed by autograd one "
                                      "sample at a time from here (exact, slower)",
                                      RuntimeWarning)
                        self._use("loop")
                        summaries = self._summary_function(max_memory)
                        continue
                    except torch.cuda.OutOfMemoryError:
                        if len(x) == 1:
                            raise
                        chunk = len(x) // 2
                        del x
                        if self.device.type == "cuda":
                            torch.cuda.empty_cache()
                        warnings.warn(f"out of GPU memory; retrying with chunks of {chunk} "
                                      "samples (a smaller batch_size avoids the retry)",
                                      RuntimeWarning)
                        continue
                    rows.add(features)
                    done += len(x)
                    if progress is not None:
                        progress(len(x))
        return rows.result()


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


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
