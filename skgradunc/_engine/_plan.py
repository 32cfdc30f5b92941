"""The plan: what features to compute and how, decided once by ``fit`` (the probe) and
applied by every ``transform``. A frozen record of names, so that it pickles with the
transformer and says what it found; binding it to the network is the one check that the
network has not changed since."""

from dataclasses import dataclass, field, replace

from .._layers import choose_rule
from ..statistics import STATISTICS, needed_columns
from .._network import trainable_parameters
from ._parameters import resolve_groups

__all__ = ["STRATEGIES", "Plan", "NetworkChangedError", "bind_layers"]

# per-layer products; vmap over the whole network; one sample at a time (what vmap cannot
# batch, e.g. nn.GRU): all exact, in decreasing speed
STRATEGIES = ("per-layer", "vmap", "loop")


class NetworkChangedError(ValueError):
    """The network differs from the one the plan was made for: fit again."""


@dataclass(frozen=True)
class Plan:
    """What to compute (the first block) and how (the second, found by the probe).

    ``groups``: (group name, its parameter names) pairs. ``parameters``: those whose
    per-sample gradients are taken, in module order; ``network``: the ones of the
    ``network`` group (the trainable ones). ``units``: (parameter, its unit, its name
    there). ``layers``: (unit name, the name of its rule's class) for the per-layer
    strategy; ``broadcast``: parameters given per-sample copies there. ``overwritten``:
    (unit, call, "input" | "output") saved tensors in-place operations overwrite;
    ``uses``: (unit, ((parameter, edges per call), ...)) where a unit's call takes a
    weight's gradient more than once (a packed attention projection: q, k and v).
    """

    target: str
    temperature: float
    groups: tuple
    statistics: tuple
    include_network: bool
    softmax: tuple
    output: str
    output_guessed: bool = False
    sigmoids: str = None
    parameters: tuple = ()
    network: tuple = ()
    units: tuple = ()
    strategy: str = "per-layer"
    layers: tuple = ()
    broadcast: tuple = ()
    overwritten: frozenset = field(default_factory=frozenset)
    uses: tuple = ()

    @classmethod
    def for_network(cls, module, target="predicted", groups="layer", statistics=STATISTICS,
                    include_network=True, softmax=(), output="logits", temperature=1.0):
        """What to compute for ``module``, its groups resolved (the probe adds how)."""
        groups = resolve_groups(module, groups)
        return cls(target=target, temperature=float(temperature),
                   groups=tuple((name, tuple(members)) for name, members in groups.items()),
                   statistics=tuple(statistics), include_network=bool(include_network),
                   softmax=tuple(softmax), output=output)

    def feature_names(self):
        names = [f"{group}__{s}" for group, _ in self.groups for s in self.statistics]
        if self.include_network:
            names += [f"network__{s}" for s in self.statistics]
        return names + [f"softmax__{f}" for f in self.softmax]

    def needed(self):
        """The summary columns the statistics read (:func:`needed_columns`)."""
        return needed_columns(self.statistics)

    def unit_of(self):
        """{parameter: (unit, its name there)}."""
        return {name: (unit, local) for name, unit, local in self.units}

    def with_strategy(self, strategy, layers=(), broadcast=()):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        return replace(self, strategy=strategy, layers=tuple(layers),
                       broadcast=tuple(broadcast))

    def check_parameters(self, module):
        """Refuse a network whose parameters taken (requires_grad) changed since fit."""
        now = trainable_parameters(module)
        if list(now) != list(self.network):
            raise NetworkChangedError(
                "the network's trainable parameters changed since fit (requires_grad was set "
                f"on {sorted(set(now) ^ set(self.network))}), which changes every "
                "gradient feature; call fit again")


def bind_layers(plan, module):
    """{unit name: (layer, rule)} of a per-layer plan on ``module``: each unit's rule
    chosen again (exact type, forward, hooks, parametrisations) must be the planned one."""
    params = {}
    for _, unit, local in plan.units:
        params.setdefault(unit, []).append(local)
    bound = {}
    for name, rule_name in plan.layers:
        try:
            layer = module.get_submodule(name)
        except AttributeError:
            layer = None
        rule = None if layer is None else choose_rule(layer, params.get(name, ()))
        if rule is None or type(rule).__name__ != rule_name:
            now = "none" if rule is None else type(rule).__name__
            raise NetworkChangedError(
                f"the network changed since fit: layer {name!r} was computed by {rule_name} "
                f"and now takes {now} (a hook, a parametrisation, a replaced forward?); call "
                "fit again")
        bound[name] = (layer, rule)
    return bound
