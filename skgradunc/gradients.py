"""Per-sample gradients of a loss at a chosen target, batched with torch.func.

For every input x the gradient of a per-sample loss L(f(x; w)) with respect to
the trainable weights w is computed without touching the user's module: its
parameters are passed to :func:`torch.func.functional_call` as detached copies,
so ``.grad``, ``requires_grad`` and the weights stay as they are, and train/eval
flags are restored module by module afterwards.
"""

from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch.func import functional_call, grad, vmap

from .statistics import finalize, merge, softmax_features, summarize

__all__ = ["TARGETS", "target_loss", "resolve_groups", "evaluation_mode",
           "GradientFeatureEngine"]

TARGETS = ("predicted", "all_ones", "uniform")


def target_loss(logits, target):
    """Per-sample loss (shape (n,)) of logits (n, q) at ``target``.

    ``"predicted"`` (Oberdiek et al. 2018)
        Negative log-likelihood at the predicted class: -log p_argmax.
    ``"all_ones"`` (Lee & AlRegib 2020)
        Binary cross-entropy between the sigmoid outputs and the all-ones
        confounding label, summed over the classes:
        sum_k -log sigmoid(z_k) = sum_k softplus(-z_k).
    ``"uniform"`` (GradNorm, Huang et al. 2021)
        Cross-entropy between the uniform distribution and the softmax,
        -(1/q) sum_k log p_k; it differs from KL(u || p) by the constant log q,
        so the gradients are identical.
    """
    if target == "predicted":
        log_p = torch.log_softmax(logits, dim=-1)
        predicted = logits.argmax(dim=-1, keepdim=True)
        return -log_p.gather(-1, predicted).squeeze(-1)
    if target == "all_ones":
        return torch.nn.functional.softplus(-logits).sum(dim=-1)
    if target == "uniform":
        return -torch.log_softmax(logits, dim=-1).mean(dim=-1)
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


def _layer_groups(module, trainable):
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
        -> list of layer or parameter names.
    """
    trainable = trainable_parameters(module)
    if isinstance(groups, str):
        if groups == "layer":
            return _layer_groups(module, trainable)
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
    layers = sorted(set(_layer_groups(module, trainable)))
    resolved = OrderedDict()
    for group, members in spec:
        if group in ("network", "softmax") or "__" in str(group):
            raise ValueError(f"group name {group!r} is reserved or contains '__'")
        if isinstance(members, str):
            members = [members]
        names = []
        for member in members:
            found = [p for p in trainable
                     if p == member or p.startswith(member + ".") or member == "module"
                     and "." not in p]
            if not found:
                raise ValueError(
                    f"unknown layer or parameter {member!r}; layers with trainable "
                    f"parameters: {layers}")
            names.extend(p for p in found if p not in names)
        resolved[str(group)] = names
    return resolved


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




class GradientFeatureEngine:
    """Compute gradient statistics and softmax features for chunks of inputs.

    Parameters
    ----------
    module : torch.nn.Module returning logits (n, q)
    target : one of TARGETS
    groups : OrderedDict from :func:`resolve_groups`
    statistics : sequence of statistic names
    include_network : bool
        Add the statistics of the whole gradient (every trainable weight).
    softmax : sequence of softmax feature names (may be empty)
    device : torch.device
    """

    def __init__(self, module, target, groups, statistics, include_network, softmax,
                 device):
        self.module = module
        self.target = target
        self.groups = groups
        self.statistics = tuple(statistics)
        self.include_network = include_network
        self.softmax = tuple(softmax)
        self.device = torch.device(device)
        self.trainable = trainable_parameters(module)
        covered = [p for names in groups.values() for p in names]
        # groups that partition the gradient let the network summary reuse theirs
        self._groups_partition = sorted(covered) == sorted(self.trainable)

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

    def _gradient_function(self):
        module, target = self.module, self.target

        def loss(params, frozen, x):
            logits = functional_call(module, (params, frozen), (x.unsqueeze(0),))
            return target_loss(logits, target).sum(), logits.squeeze(0)

        return vmap(grad(loss, has_aux=True), in_dims=(None, None, 0))

    def _chunk_features(self, grads, logits):
        n = logits.shape[0]
        flat = {name: g.reshape(n, -1).to(torch.float64) for name, g in grads.items()}
        columns, summaries = [], {}
        for group, names in self.groups.items():
            summary = summarize(torch.cat([flat[p] for p in names], dim=1))
            summaries[group] = summary
            if self.statistics:
                columns.append(finalize(summary, self.statistics))
        if self.include_network and self.statistics:
            parts = (list(summaries.values()) if self._groups_partition
                     else [summarize(flat[p]) for p in self.trainable])
            network = parts[0]
            for part in parts[1:]:
                network = merge(network, part)
            columns.append(finalize(network, self.statistics))
        if self.softmax:
            columns.append(softmax_features(logits.detach().to(torch.float64), self.softmax))
        return torch.cat(columns, dim=1)

    def transform(self, X, batch_size):
        """Features for X (numpy float32, first axis = samples) as float64 numpy."""
        params, frozen = self._weights_on_device()
        gradient_function = self._gradient_function()
        outputs = []
        with evaluation_mode(self.module):
            for start in range(0, len(X), batch_size):
                chunk = torch.from_numpy(X[start:start + batch_size]).to(self.device)
                grads, logits = gradient_function(params, frozen, chunk)
                outputs.append(self._chunk_features(grads, logits))
        return torch.cat(outputs).cpu().numpy()  # one copy back to the host
