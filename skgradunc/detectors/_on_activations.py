"""What the detectors computed from layers' outputs and their gradients share: the
network held as :class:`~skgradunc.GradientMetricTransformer` holds it, the tapped layers
checked at fit, inputs read chunk by chunk (arrays, tensors, Datasets, DataLoaders), and
scikit-learn's outlier convention of :class:`._outlier.InDistributionDetector`."""

from .._data import as_samples
from .._device import check_device
from .._engine._activations import check_layers, layer_output_shapes, map_chunks
from .._network import clone_sharing_network, find_module, network_lock, sample_shape
from .._outputs import resolve_output
from .._validation import check_positive_int
from ._outlier import InDistributionDetector

__all__ = ["ActivationDetector", "spatial_mean", "spatial_sum"]


def spatial_sum(t):
    """(n, C) sums over the axes after the channels (a feature map's H, W); a (n, C)
    output is its own."""
    return t.flatten(2).sum(dim=2) if t.dim() > 2 else t


def spatial_mean(t):
    """(n, C) means over the axes after the channels; a (n, C) output is its own."""
    return t.flatten(2).mean(dim=2) if t.dim() > 2 else t


class ActivationDetector(InDistributionDetector):
    """Base of the detectors on activation gradients: a subclass sets ``_losses()``
    (per-sample losses, see :func:`~skgradunc._engine._activations.layer_gradients`),
    implements ``_reduce(logits, taps)`` ((n, k) per chunk) and ``_fit_reduced(R)`` /
    ``_score_reduced(R)`` on the joined rows."""

    def __sklearn_clone__(self):
        return clone_sharing_network(self)

    def _layers(self):
        return check_layers(self.module_, self.layers)

    def _reduced(self, X, check=False):
        samples = as_samples(X, self.input_shape_ if hasattr(self, "input_shape_")
                             else sample_shape(self.estimator, self.module_),
                             owner=type(self).__name__)
        with network_lock(self.module_):
            return map_chunks(self.module_, samples, self.layers_, self._losses(),
                              self._reduce, device=check_device(self.device),
                              batch_size=self.batch_size, output_kind=self.output_,
                              check=check)

    def fit(self, X, y=None):
        """Take hold of the (fitted) network and fit the detector on in-distribution
        inputs ``X``; ``offset_`` is set so that ``predict`` keeps a fraction ``tpr``
        of them.

        Parameters
        ----------
        X : array-like, tensor, Dataset, SliceDataset or DataLoader, (n_samples, ...)
            In-distribution inputs as the network takes them, read as by
            :meth:`skgradunc.GradientMetricTransformer.transform`.
        y : None
            Ignored: no labels are needed.

        Returns
        -------
        self
            The fitted detector.
        """
        self._check_tpr()
        check_positive_int(self.batch_size, "batch_size")
        check_device(self.device)
        self._check_params()
        self.module_ = find_module(self.estimator)
        self.output_, _ = resolve_output(self.output, self.estimator)
        self.layers_ = self._layers()
        reduced = self._reduced(X, check=True)
        head = as_samples(X, sample_shape(self.estimator, self.module_)).head(1)
        self.input_shape_ = tuple(head.shape[1:])
        with network_lock(self.module_):
            self.layer_shapes_ = layer_output_shapes(self.module_, head, self.layers_,
                                                     check_device(self.device))
        training_scores = self._fit_reduced(reduced)
        self.n_samples_fit_ = len(reduced)
        self._fit_threshold(training_scores)
        return self

    def _check_params(self):
        """Subclasses check their own parameters here."""

    def _scores(self, X):
        return self._score_reduced(self._reduced(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
