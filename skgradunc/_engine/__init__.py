"""The gradient engine: per-sample gradients of a loss at a chosen target, summarised
chunk by chunk into statistics per group of weights.

For every input x the gradient of a per-sample loss L(f(x; w)) with respect to the
weights w is computed without touching the user's module: its parameters are passed to
:func:`torch.func.functional_call` as detached copies, so ``.grad``, ``requires_grad``
and the weights stay as they are, and train/eval flags are restored module by module
afterwards. ``fit`` makes a :class:`Plan` (:func:`make_plan`, the probe): what to compute
and how, settled once; ``transform`` applies it (:func:`compute_features`). The
strategies, all exact: the layers' rules (:mod:`skgradunc._layers`) from one forward and
one backward to the layer outputs (:mod:`._per_layer`); ``torch.func.vmap`` over the
whole network (:mod:`._vmap`); one sample at a time, what vmap cannot batch (:mod:`._loop`).
"""

from ._audit import UnsupportedNetworkError
from ._chunks import compute_features
from ._losses import TARGETS, target_loss
from ._parameters import gradient_parameters, resolve_groups
from ._plan import STRATEGIES, NetworkChangedError, Plan
from ._probe import STRATEGY_CLASSES, lay_out, make_plan

__all__ = ["TARGETS", "STRATEGIES", "STRATEGY_CLASSES", "target_loss", "resolve_groups",
           "gradient_parameters", "Plan", "lay_out", "make_plan", "compute_features",
           "NetworkChangedError", "UnsupportedNetworkError"]
