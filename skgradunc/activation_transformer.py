"""ActivationGradientTransformer: inputs -> statistics of the per-sample gradients with
respect to chosen layers' outputs."""

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._data import as_samples
from ._device import check_device
from ._engine._activations import check_layers, map_chunks
from ._engine._losses import target_loss
from ._network import clone_sharing_network, find_module, network_lock, sample_shape
from ._outputs import resolve_output
from ._validation import check_positive_int
from .statistics import (SOFTMAX_FEATURES, STATISTICS, finalize, needed_columns,
                         softmax_features, summarize)
from .transformer import _names

__all__ = ["ActivationGradientTransformer"]

# the targets of one loss per sample (ExGrad's expectation is a weight-gradient target)
ACTIVATION_TARGETS = ("predicted", "all_ones", "all_ones_sigmoid", "uniform")


class ActivationGradientTransformer(TransformerMixin, BaseEstimator):
    """Map each input to statistics of the network's per-sample gradient with respect to
    chosen layers' outputs (activation gradients).

    The sibling of :class:`~skgradunc.GradientMetricTransformer` for the layers' outputs
    instead of their weights: one forward and one batched backward per chunk give every
    sample's own gradient at every tapped layer (in evaluation mode a network treats each
    sample on its own; ``fit`` checks it on two samples), so the cost is about one
    training step's, whatever the layers' sizes. The same targets, statistics, softmax
    features and inputs (arrays, memmaps, tensors, Datasets, DataLoaders). The network is
    never changed.

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        The classifier.
    layers : list of str
        Names of the tapped modules (``module.named_modules()``); each must run once per
        forward and return one tensor.
    target : {"predicted", "all_ones", "all_ones_sigmoid", "uniform"}, default="predicted"
        The per-sample loss differentiated (see
        :class:`~skgradunc.GradientMetricTransformer`).
    statistics : "all" or list of str, default="all"
        Statistics of each layer's flattened gradient, from
        :data:`skgradunc.statistics.STATISTICS`.
    softmax_features : bool or list of str, default=True
        Append the softmax's normalised entropy and maximum probability.
    batch_size : int, default=256
        Inputs per chunk: the memory held is the tapped outputs and their gradients of
        one chunk.
    device : str, default="auto"
        Where the network runs (``"auto"``: CUDA when available).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns.

    Attributes
    ----------
    layers_ : list of str
        The tapped layers.
    feature_names_out_ : ndarray of str
        ``"<layer>__<statistic>"``, then ``"softmax__<feature>"``.
    output_ : str
        What the module returns, as resolved.
    input_shape_ : tuple
        The shape of one input.
    n_features_in_ : int
        Values per input.

    Examples
    --------
    >>> import torch
    >>> from skgradunc import ActivationGradientTransformer
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> t = ActivationGradientTransformer(net, layers=["1"], statistics=["l2", "max"],
    ...                                   device="cpu")
    >>> t.fit_transform(torch.randn(5, 4).numpy()).shape
    (5, 4)
    >>> list(t.get_feature_names_out())
    ['1__l2', '1__max', 'softmax__entropy', 'softmax__max_prob']
    """

    def __init__(self, estimator, *, layers, target="predicted", statistics="all",
                 softmax_features=True, batch_size=256, device="auto", output="auto"):
        self.estimator = estimator
        self.layers = layers
        self.target = target
        self.statistics = statistics
        self.softmax_features = softmax_features
        self.batch_size = batch_size
        self.device = device
        self.output = output

    def __sklearn_clone__(self):
        return clone_sharing_network(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    def _check_params(self):
        if self.target not in ACTIVATION_TARGETS:
            raise ValueError(f"target must be one of {ACTIVATION_TARGETS} for activation "
                             f"gradients, got {self.target!r}")
        statistics = _names(self.statistics, STATISTICS, "statistics")
        softmax = _names(self.softmax_features, SOFTMAX_FEATURES, "softmax_features")
        if not statistics and not softmax:
            raise ValueError("no features requested: statistics and softmax_features are empty")
        check_positive_int(self.batch_size, "batch_size")
        return statistics, softmax, check_device(self.device)

    def fit(self, X, y=None):
        """Take hold of the (fitted) network; check the layers and that its samples do
        not interact on two inputs of ``X``.

        Parameters
        ----------
        X : array-like, tensor, Dataset, SliceDataset or DataLoader, (n_samples, ...)
            Inputs as the network takes them; only the first two are read.
        y : None
            Ignored.

        Returns
        -------
        self : ActivationGradientTransformer
            The fitted transformer.
        """
        statistics, softmax, device = self._check_params()
        self.module_ = find_module(self.estimator)
        self.output_, _ = resolve_output(self.output, self.estimator)
        self.layers_ = check_layers(self.module_, self.layers)
        head = as_samples(X, sample_shape(self.estimator, self.module_)).head(2)
        self.input_shape_ = tuple(head.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        with network_lock(self.module_):
            map_chunks(self.module_, as_samples(head), self.layers_, self._losses(),
                       self._reduce(statistics, softmax), device=device, batch_size=2,
                       output_kind=self.output_, check=True)
        self.feature_names_out_ = np.asarray(
            [f"{layer}__{s}" for layer in self.layers_ for s in statistics]
            + [f"softmax__{f}" for f in softmax], dtype=object)
        return self

    def _losses(self):
        target = self.target
        return [lambda logits, taps: target_loss(logits, target)]

    def _reduce(self, statistics, softmax):
        needed = needed_columns(statistics)

        def reduce(logits, taps):
            columns = [finalize(summarize(taps[name].gradients[0].flatten(1), needed),
                                statistics) for name in self.layers_ if statistics]
            if softmax:
                columns.append(softmax_features(logits, softmax))
            return torch.cat([c.to(torch.float64) for c in columns], dim=1)
        return reduce

    def transform(self, X):
        """Statistics of each tapped layer's gradient, then the softmax features, float64.

        Parameters
        ----------
        X : array-like, tensor, Dataset, SliceDataset or DataLoader, (n_samples, ...)
            The inputs, read chunk by chunk.

        Returns
        -------
        features : ndarray of float64, shape (n_samples, n_features_out)
            One row per input, the columns of ``get_feature_names_out()``.
        """
        check_is_fitted(self, "layers_")
        statistics, softmax, device = self._check_params()
        samples = as_samples(X, self.input_shape_, owner=type(self).__name__)
        with network_lock(self.module_):
            return map_chunks(self.module_, samples, self.layers_, self._losses(),
                              self._reduce(statistics, softmax), device=device,
                              batch_size=self.batch_size, output_kind=self.output_)

    def get_feature_names_out(self, input_features=None):
        """Feature names ``"<layer>__<statistic>"``, then ``"softmax__<feature>"``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored.

        Returns
        -------
        feature_names_out : ndarray of str
            A copy of ``feature_names_out_``.
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
