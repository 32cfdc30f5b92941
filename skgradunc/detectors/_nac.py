"""NAC-UE (Liu et al., ICLR 2024): neuron activation coverage, as the authors' OpenOOD
postprocessor computes it (BierOne/ood_coverage, b002780,
``openood/postprocessors/nac/coverage.py``)."""

import numbers

import numpy as np
import torch
from scipy.special import expit

from ._on_activations import ActivationDetector, spatial_sum

__all__ = ["NACDetector", "nac_bin_edges"]


def nac_bin_edges(n_edges):
    """The authors' ``n_edges`` bin edges on [0, 1.2] (``coverage.logspace(1e3, M)``):
    on [0, 0.5] the base-1000 logarithms of evenly spaced numbers from 1 to sqrt(1000)
    (bins narrowing towards 0.5), mirrored onto [0.5, 1], the edge at 1 moved to 1.01
    and a last one at 1.2; ``n_edges - 1`` bins. ``n_edges`` must be even.

    Parameters
    ----------
    n_edges : int
        The authors' M, even.

    Returns
    -------
    edges : ndarray of shape (n_edges,)
        Increasing, from 0 to 1.2.

    Examples
    --------
    >>> from skgradunc.detectors import nac_bin_edges
    >>> nac_bin_edges(6).round(3).tolist()
    [0.0, 0.404, 0.5, 0.596, 1.01, 1.2]
    """
    half = n_edges // 2
    x = np.linspace(1, np.sqrt(1e3), num=half)
    low = np.log(x) / np.log(1e3)
    edges = np.concatenate([low[:-1], (1 - low)[::-1]])
    edges[-1] += 1e-2
    return np.append(edges, 1.2)


def _uniform_cross_entropy(logits, taps):
    # KL(uniform || softmax) up to a constant: the same gradient
    return -torch.log_softmax(logits, dim=1).mean(dim=1)


def _per_layer(value, layers, name):
    """A hyper-parameter given once or per layer ({layer: value})."""
    if isinstance(value, dict):
        missing = [layer for layer in layers if layer not in value]
        if missing:
            raise ValueError(f"{name} gives no value for the layers {missing}")
        return [value[layer] for layer in layers]
    return [value] * len(layers)


class NACDetector(ActivationDetector):
    """NAC-UE's neuron activation coverage (Liu et al. 2024), in scikit-learn's outlier
    convention.

    Each neuron n of a tapped layer has a state per input,
    s_n(x) = sigmoid(alpha * o_n(x) * g_n(x)), with o the layer's output and g the
    gradient of KL(uniform || softmax(f(x))) with respect to it (a feature map summed
    over its positions first, o and g each, as the authors pool). ``fit`` counts the
    training inputs' states in the bins of :func:`nac_bin_edges` (``n_bins + 1`` edges);
    a bin's coverage is min(count / ``min_count``, 1). An input's score is the coverage
    of the bins its states fall in (0 outside [0, 1.01)), averaged over the neurons and
    then over the layers: higher means more typical.

    The authors' CIFAR-10 setting, the defaults here: the penultimate features
    (ResNet's ``avgpool``), 1,000 class-balanced training images, ``n_bins + 1 = 50``
    edges, ``min_count=50``, ``alpha=100``. ``alpha`` scales o * g, whose size depends
    on the network: the authors tune it per layer and benchmark (on a validation set of
    outliers); ``alpha="auto"`` sets it from the training inputs alone.

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        The classifier, as for :class:`~skgradunc.GradientMetricTransformer`.
    layers : list of str
        Names of the tapped modules (``module.named_modules()``), channels first.
    n_bins : int or dict, default=49
        Bins per neuron (the authors' M is ``n_bins + 1``, even); per layer as
        ``{layer: value}``.
    min_count : int or dict, default=50
        Training states a bin needs for full coverage (the authors' O).
    alpha : float, "auto" or dict, default=100.0
        The sigmoid's steepness (the authors' ``sig_alpha``). ``"auto"``: per layer,
        1 / the standard deviation of o * g over the training inputs (all the layer's
        neurons together), a choice from in-distribution data alone that spreads the
        states over the sigmoid's range whatever the network's scale (not the authors').
    tpr : float, default=0.95
        Fraction of the training inputs ``predict`` keeps as in-distribution.
    batch_size : int, default=256
        Inputs per chunk.
    device : str, default="auto"
        Where the network runs (``"auto"``: CUDA when available).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns.

    Attributes
    ----------
    layers_ : list of str
        The tapped layers.
    neurons_ : list of int
        Each layer's neurons (channels).
    alpha_ : list of float
        Each layer's steepness, as given or as ``"auto"`` chose it.
    coverage_ : list of ndarray of shape (n_bins, n_neurons)
        Each layer's bin coverage, min(count / min_count, 1).
    bin_edges_ : list of ndarray of shape (n_bins + 1,)
        Each layer's bin edges.
    offset_ : float
        The threshold on ``score_samples``.
    layer_shapes_ : list of tuple
        The shape of each layer's output for one input.
    n_samples_fit_ : int
        Training inputs counted.
    input_shape_ : tuple
        The shape of one input.

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import NACDetector
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> X = torch.randn(100, 4).numpy()
    >>> nac = NACDetector(net, layers=["1"], min_count=5, device="cpu").fit(X)
    >>> nac.score_samples(X).shape
    (100,)
    """

    def __init__(self, estimator, *, layers, n_bins=49, min_count=50, alpha=100.0,
                 tpr=0.95, batch_size=256, device="auto", output="auto"):
        self.estimator = estimator
        self.layers = layers
        self.n_bins = n_bins
        self.min_count = min_count
        self.alpha = alpha
        self.tpr = tpr
        self.batch_size = batch_size
        self.device = device
        self.output = output

    def _check_params(self):
        layers = self.layers if not isinstance(self.layers, str) else [self.layers]
        for bins in _per_layer(self.n_bins, layers, "n_bins"):
            if not (isinstance(bins, numbers.Integral) and bins >= 3 and bins % 2 == 1):
                raise ValueError(f"n_bins must be an odd integer >= 3 (the authors' M = "
                                 f"n_bins + 1 edges is even), got {bins!r}")
        for count in _per_layer(self.min_count, layers, "min_count"):
            if not (isinstance(count, numbers.Real) and count > 0):
                raise ValueError(f"min_count must be positive, got {count!r}")
        for alpha in _per_layer(self.alpha, layers, "alpha"):
            if alpha == "auto":
                continue
            if not (isinstance(alpha, numbers.Real) and np.isfinite(alpha) and alpha > 0):
                raise ValueError(f"alpha must be a positive number or 'auto', got {alpha!r}")

    def _losses(self):
        return [_uniform_cross_entropy]

    def _reduce(self, logits, taps):
        """Each neuron's o * g (pooled o times pooled g), the layers joined."""
        products = []
        for name in self.layers_:
            o = spatial_sum(taps[name].activation.to(torch.float64))
            g = spatial_sum(taps[name].gradients[0].to(torch.float64))
            products.append(o * g)
        return torch.cat(products, dim=1)

    def _split(self, reduced):
        """The joined columns cut back into layers."""
        return np.split(reduced, np.cumsum(self.neurons_)[:-1], axis=1)

    def _states(self, reduced):
        return [expit(alpha * products)
                for alpha, products in zip(self.alpha_, self._split(reduced))]

    def _fit_reduced(self, reduced):
        self.neurons_ = [shape[0] for shape in self.layer_shapes_]
        # "auto": 1 / the standard deviation of the training inputs' o * g in the layer,
        # so that the states spread over the sigmoid's range whatever the network's scale
        self.alpha_ = [1 / max(float(np.std(products)), np.finfo(float).tiny)
                       if alpha == "auto" else float(alpha)
                       for alpha, products in zip(_per_layer(self.alpha, self.layers_,
                                                             "alpha"), self._split(reduced))]
        self._fit_states(self._states(reduced))
        return self._score_reduced(reduced)

    def _fit_states(self, layer_states):
        """``bin_edges_`` and ``coverage_`` from each layer's training states."""
        bins = _per_layer(self.n_bins, self.layers_, "n_bins")
        counts = _per_layer(self.min_count, self.layers_, "min_count")
        self.bin_edges_ = [nac_bin_edges(b + 1) for b in bins]
        self.coverage_ = []
        for states, edges, min_count in zip(layer_states, self.bin_edges_, counts):
            index = _bin_index(states, edges)
            count = np.zeros((len(edges) - 1, states.shape[1]))
            for n in range(states.shape[1]):
                inside = index[:, n] >= 0
                count[:, n] = np.bincount(index[inside, n], minlength=len(edges) - 1)
            self.coverage_.append(np.minimum(count / min_count, 1.0))

    def _score_reduced(self, reduced):
        return self._score_states(self._states(reduced))

    def _score_states(self, layer_states):
        """Each input's coverage, averaged over each layer's neurons, then the layers."""
        scores = np.zeros(len(layer_states[0]))
        for states, edges, coverage in zip(layer_states, self.bin_edges_, self.coverage_):
            index = _bin_index(states, edges)
            neurons = np.arange(states.shape[1])
            covered = np.where(index >= 0, coverage[np.maximum(index, 0), neurons], 0.0)
            scores += covered.mean(axis=1)
        return scores / len(self.coverage_)


def _bin_index(states, edges):
    """Each state's bin: i where edges[i] <= s < edges[i + 1]; -1 outside them."""
    index = np.searchsorted(edges, states, side="right") - 1
    return np.where((index >= 0) & (index < len(edges) - 1), index, -1)
