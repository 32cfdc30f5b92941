"""GradientMetricTransformer: inputs -> layerwise gradient statistics."""

import copy
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from tqdm.auto import tqdm

from ._data import as_samples, from_input, is_dataset
from ._device import check_device
from ._engine import (TARGETS, Plan, UnsupportedNetworkError, compute_features, make_plan,
                      resolve_groups)
from ._network import (clone_sharing_network, find_module, is_fitted, network_lock,
                       sample_shape)
from ._outputs import NetworkOutputError, resolve_output, sigmoid_outputs
from ._validation import (check_number, check_positive_int, check_positive_real, check_samples,
                          is_int)
from .statistics import SOFTMAX_FEATURES, STATISTICS

__all__ = ["GradientMetricTransformer"]


def _names(value, allowed, what):
    if value is True or value == "all":
        return tuple(allowed)
    if value is False or value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    unknown = [v for v in names if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} lists a name twice: {list(names)}")
    return names


def _layer_rules(plan):
    """{layer or parameter name: how its per-sample gradients are computed} of a plan
    (see ``layer_rules_``)."""
    if plan.strategy != "per-layer":
        return {}
    return dict(plan.layers) | {name: "per-sample copy" for name in plan.broadcast}


@contextmanager
def _network_errors(sample_shape):
    """Errors of the network on X reported as the inputs' problem."""
    try:
        yield
    except (torch.cuda.OutOfMemoryError, NetworkOutputError, UnsupportedNetworkError):
        raise  # out of memory even one sample at a time, the output, the engine: not X
    except (RuntimeError, ValueError, IndexError) as exc:
        if from_input(exc):
            raise   # reading or validating X: its own message names the sample
        raise ValueError(f"the network could not process inputs of shape "
                         f"{tuple(sample_shape)}: {exc}") from exc


@contextmanager
def _progress(total, verbose):
    """A progress bar (samples/s, ETA) when ``verbose``; yields its update function."""
    if not verbose:   # no tqdm at all: it would start its monitor thread
        yield lambda done: None
        return
    with tqdm(total=total, unit="sample", desc="gradient features",
              dynamic_ncols=True) as bar:
        yield bar.update


class GradientMetricTransformer(TransformerMixin, BaseEstimator):
    """Map each input to statistics of the network's per-sample gradient.

    For every sample the gradient of a loss at ``target`` with respect to the
    network's trainable weights is compressed, per group of weights and for the
    whole network, into the statistics of Oberdiek et al. (2018); the softmax
    entropy and maximum probability are appended. Gradients are computed
    batched, in chunks of ``batch_size`` on ``device``: layer by layer from one
    forward and one backward pass, by a rule for Linear, Conv1d/2d, BatchNorm,
    LayerNorm, GroupNorm, InstanceNorm, PReLU and Embedding layers and by
    ``torch.func.vmap`` over that layer alone for any other layer; with
    ``torch.func.vmap`` over the whole network where weights are shared or used
    outside their layer's call; and one sample at a time (with a warning) where
    vmap cannot batch the network (e.g. ``nn.GRU``); all are exact. A rule is
    used only where it is exact for that layer instance: its exact type or a
    subclass that keeps the base forward, without forward hooks or
    parametrisations, its weights used in no other call (a subclass with its own
    forward, a pruning mask, a QAT layer take the layer-local path;
    ``F.linear(h, self.embed.weight)`` the whole network's). The network and X
    are never changed. X reaches the module as float32 (a module that starts
    with an Embedding casts it back: ``x.long()``). X may be an array, a memmap,
    a tensor, a torch Dataset or DataLoader, or skorch's ``SliceDataset`` (see
    :meth:`transform`); it is read block by block, so memory does not grow with
    the number of samples.

    Parameters
    ----------
    estimator : fitted skorch net, FrozenEstimator, or torch.nn.Module
        The classifier; its module returns class scores of shape (n, q), or
        one score per sample for two classes (see ``output``).
        A fitted (or frozen) estimator or a plain module is used as it is and
        never retrained, and :func:`~sklearn.base.clone` of the transformer
        keeps sharing it (the :class:`~sklearn.frozen.FrozenEstimator`
        pattern), so cross-validating a pipeline never refits the network.
        An *unfitted* scikit-learn estimator is cloned and fitted on
        ``(X, y)`` by :meth:`fit` (scikit-learn's meta-estimator convention).
    target : {"predicted", "all_ones", "all_ones_sigmoid", "uniform", "expected"}, \
            default="predicted"
        The loss whose gradient is taken, computed in float64
        (docs/gradient_metrics.md): negative log-likelihood at the predicted
        class (the paper); binary cross-entropy of the softmax outputs against
        the all-ones confounding label (Lee & AlRegib 2020, as
        their only public implementation, pytorch-ood's ``GradUncertainty``,
        reads it); the same with per-class sigmoids (``"all_ones_sigmoid"``,
        needs logits); cross-entropy to the uniform distribution (GradNorm,
        Huang et al. 2021); ``"expected"``: every statistic is the expectation
        over the network's predicted distribution of the statistic at each
        class, sum_k p_k stat(grad(-log p_k)) (ExGrad, Igoe et al. 2022, with
        ``statistics=["l2"]``), one gradient per class (q times the cost).
    temperature : float, default=1.0
        GradNorm's temperature T for ``target="uniform"``: the softmax of the
        logits divided by T. Must be 1 for the other targets.
    groups : "layer", "parameter", list or dict, default="layer"
        Which weights form one group of statistics: each layer (weight and
        bias together), each parameter tensor, a list of layer/parameter
        names, or a dict of group name -> list of names. A name whose weights
        are all frozen (``requires_grad=False``) is taken too: gradients can be
        taken with respect to frozen weights (``network`` covers the trainable
        ones).
    statistics : "all" or list of str, default="all"
        Any of ``l1, l2, min, max, mean, std, skew, kurtosis``. ``std`` has
        ``ddof=0``; ``skew`` and ``kurtosis`` are the biased estimators and
        kurtosis is excess (Fisher) kurtosis, as scipy.stats' defaults.
    include_network : bool, default=True
        Add the statistics of the whole gradient (``network__<stat>``).
    softmax_features : bool or list of str, default=True
        ``entropy`` (normalised by log q, in [0, 1]) and/or ``max_prob``.
    batch_size : int, default=256
        Samples per chunk; peak memory grows with it, never with len(X). On a
        GPU, thousands use the device better; a chunk that runs out of GPU
        memory is halved and retried (with a ``RuntimeWarning``).
    max_memory : int or None, default=2**30
        Approximate bound, in bytes, on the per-sample gradients held at once.
        Layer by layer, each layer's per-sample gradients are built in blocks
        of samples that fit it (a single sample's layer gradient is the floor),
        summarised and discarded, so memory follows the largest layer, not the
        whole network. A network on the whole-network ``vmap`` holds every
        weight's gradient per sample (ResNet-18: ~84 MB a sample); its chunk
        is shrunk to fit. ``None``: no bound.
    device : str, default="auto"
        Where gradients are computed: ``"auto"`` = CUDA when available.
    output : {"auto", "logits", "probabilities", "log_probabilities"}, \
            default="auto"
        What the module returns. Targets and softmax features are defined on
        logits; probabilities ``p`` are read as the logits ``log p`` and
        log-probabilities as logits (softmax is blind to their per-row
        offset), so all three give the same features for the same network.
        One score per sample, shape (n,) or (n, 1), is the two-class case
        (``BCEWithLogitsLoss`` style): a logit ``s`` is read as ``[0, s]``, a
        probability ``p`` as ``[log(1 - p), log p]``. A tuple counts by its
        first element (skorch's convention). ``"auto"``: what a skorch net's
        criterion says, as skorch reads it (``CrossEntropyLoss``,
        ``BCEWithLogitsLoss``: logits; ``BCELoss``, and ``NLLLoss`` in a
        ``NeuralNetClassifier``: probabilities; ``NLLLoss`` elsewhere:
        log-probabilities); else logits, refusing outputs that look like
        probabilities (rows non-negative, summing to 1) and one score per
        sample (a logit or a probability? say which). Several outputs under a
        ``BCEWithLogitsLoss`` or ``BCELoss`` criterion (a one-vs-all network such
        as :class:`~skgradunc.OneVsAllClassifier`) are per-class sigmoids, not a
        softmax's logits, and are refused unless ``output`` is given. Other shapes, NaN or
        infinite outputs, and probabilities or log-probabilities that are not
        are refused with an error naming the shape or the sample.
        ``target="all_ones"`` needs logits.
    verbose : bool or int, default=False
        Show a progress bar (samples/s, time left) while transforming.

    Attributes
    ----------
    estimator_ : object
        The estimator whose network is used (``estimator`` itself unless it
        had to be fitted).
    module_ : torch.nn.Module
    groups_ : dict
        Group name -> parameter names.
    input_shape_ : tuple
        Shape of one sample seen in ``fit``.
    n_features_in_ : int
        Values per input sample.
    feature_names_out_ : ndarray of str
        ``"<group>__<statistic>"``, ``"network__<statistic>"``,
        ``"softmax__entropy"``, ``"softmax__max_prob"``.
    overwritten_ : frozenset
        Tensors the gradient engine saves that in-place operations of the
        network overwrite (``(layer, call, "input" | "output")``, e.g. a
        BatchNorm output under ``ReLU(inplace=True)``), found on two samples in
        ``fit``; transform keeps private copies of exactly these.
    strategy_ : {"per-layer", "vmap", "loop"}
        How the per-sample gradients are computed, settled in ``fit`` on two
        samples: per-layer products, ``vmap`` over the whole network, or one
        sample at a time. All exact; in decreasing speed.
    output_ : {"logits", "probabilities", "log_probabilities"}
        How the module's output is read (``output`` with "auto" resolved).
    layer_rules_ : dict of str to str
        With ``strategy_ == "per-layer"``: how each layer's per-sample
        gradients are computed, by layer name (``""``: the module itself):
        the name of its rule (``"LinearRule"``, ``"ConvRule"``,
        ``"FoldedConvRule"``, ``"AttentionRule"``, a rule registered with
        :func:`skgradunc.layer_rules.register_layer_rule`, ...) or
        ``"LocalRule"``, the layer-local fallback (exact, slower: see
        docs/gradient_metrics.md); parameters used outside a leaf module (a
        ViT's class token) map to ``"per-sample copy"``. Empty for the other
        strategies.
    trainable_ : list of str
        The parameters gradients are taken of (those with ``requires_grad``;
        all of them when none has it; and frozen ones that ``groups`` names);
        ``transform`` refuses a network whose set has changed since ``fit``.

    Examples
    --------
    >>> import torch
    >>> from skgradunc import GradientMetricTransformer
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> grad = GradientMetricTransformer(mlp, statistics=["l2", "max"])
    >>> features = grad.fit_transform(torch.rand(5, 4).numpy())
    >>> features.shape
    (5, 8)
    >>> list(grad.get_feature_names_out())  # doctest: +NORMALIZE_WHITESPACE
    ['0__l2', '0__max', '2__l2', '2__max', 'network__l2', 'network__max',
     'softmax__entropy', 'softmax__max_prob']
    """

    def __init__(self, estimator, *, target="predicted", temperature=1.0, groups="layer",
                 statistics="all", include_network=True, softmax_features=True, batch_size=256,
                 max_memory=2**30, device="auto", output="auto", verbose=False):
        self.estimator = estimator
        self.temperature = temperature
        self.verbose = verbose
        self.output = output
        self.target = target
        self.groups = groups
        self.statistics = statistics
        self.include_network = include_network
        self.softmax_features = softmax_features
        self.batch_size = batch_size
        self.max_memory = max_memory
        self.device = device

    def __sklearn_clone__(self):
        return clone_sharing_network(self)

    def __getstate__(self):
        state = dict(super().__getstate__())   # object's is the live __dict__ itself
        # module_ is found again in estimator_ after unpickling: a pickle holds the network
        # only as estimator_ holds it (a reference to the workers' copy, inside
        # skgradunc.cluster.sent_once)
        state.pop("module_", None)
        return state

    def __getattr__(self, name):
        # module_ after unpickling, found at first use: estimator_ may be a reference that
        # only a worker can resolve (skgradunc.cluster.sent_once), and a scheduler unpickles
        # the tasks' arguments too
        if name == "module_" and "estimator_" in self.__dict__:
            module = self.__dict__["module_"] = find_module(self.__dict__["estimator_"])
            return module
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    def _check_params(self):
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose one of {TARGETS}")
        check_positive_real(self.temperature, "temperature")
        if self.target != "uniform" and self.temperature != 1:
            raise ValueError(f"temperature={self.temperature!r} applies to target='uniform' "
                             f"(GradNorm's T) only; target={self.target!r} takes none")
        statistics = _names(self.statistics, STATISTICS, "statistics")
        softmax = _names(self.softmax_features, SOFTMAX_FEATURES, "softmax_features")
        check_positive_int(self.batch_size, "batch_size")
        if self.max_memory is not None:
            check_positive_int(self.max_memory, "max_memory")
        device = check_device(self.device)
        check_number(self.verbose, "verbose",
                     lambda v: isinstance(v, (bool, np.bool_)) or is_int(v) and v >= 0,
                     "a bool or a non-negative integer")
        if not statistics and not softmax:
            raise ValueError("no features requested: statistics and softmax_features are empty")
        return statistics, softmax, device

    def fit(self, X, y=None):
        """Take hold of the network (fitting a clone only if it is unfitted).

        Parameters
        ----------
        X : array-like, tensor, Dataset, SliceDataset or DataLoader, (n_samples, ...)
            Inputs as the network takes them, e.g. images (n, C, H, W); see
            :meth:`transform`. Arrays and tensors are checked whole; inputs read from
            where they live (memmaps, datasets, loaders) only in their first samples here,
            and whole by :meth:`transform`.
        y : array-like, optional
            Only used to fit an unfitted estimator (None with a torch Dataset of
            ``(x, y)`` items: skorch reads the labels from them).

        Returns
        -------
        self : GradientMetricTransformer
            The fitted transformer.
        """
        statistics, softmax, device = self._check_params()
        self._check_output_kind(self.estimator)
        if self.estimator is None:
            raise ValueError("estimator is None: pass a fitted classifier or torch module")
        if is_fitted(self.estimator):
            self.estimator_ = self.estimator
        elif y is None and not is_dataset(X):
            raise NotFittedError(
                f"the {type(self.estimator).__name__} given as estimator is not fitted and no "
                "y was passed to fit it: fit the network first (and wrap it in "
                "FrozenEstimator), or call fit(X, y)")
        else:
            # the network trains on what it will see in transform: validated float32
            # (a dataset goes to the estimator as it is: skorch reads it)
            train_X = X if is_dataset(X) else check_samples(
                X, sample_shape(self.estimator, None))
            self.estimator_ = clone(self.estimator).fit(
                train_X, None if y is None else np.asarray(y))   # None: the items' labels
        self.module_ = find_module(self.estimator_)
        samples = as_samples(X, sample_shape(self.estimator_, self.module_))
        if samples.in_memory:
            samples.check_all()
        head = samples.head(2)
        self.input_shape_ = tuple(head.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        # the plan, settled once on two samples, so that transform's chunks all take the
        # same path: the strategy, the tensors in-place operations overwrite, the output's
        # validity; the probe hooks into the network like transform: clones sharing it
        # take turns
        with network_lock(self.module_), _network_errors(self.input_shape_):
            self.plan_ = make_plan(self._wanted(statistics, softmax, self.estimator_),
                                   self.module_, head, device, self.max_memory)
        self.feature_names_out_ = np.asarray(self.plan_.feature_names(), dtype=object)
        self._fitted_with = self._what_to_compute()
        return self

    def _what_to_compute(self):
        """The parameters a plan is made for: transform refuses others."""
        return {name: copy.deepcopy(getattr(self, name)) for name in (
            "target", "temperature", "groups", "statistics", "include_network",
            "softmax_features", "output")}

    def _wanted(self, statistics, softmax, estimator):
        """The plan's first part: what to compute (the probe adds how)."""
        kind, guessed = self._check_output_kind(estimator)
        groups = resolve_groups(self.module_, self.groups)
        return Plan(target=self.target, temperature=float(self.temperature),
                    groups=tuple((name, tuple(members)) for name, members in groups.items()),
                    statistics=tuple(statistics), include_network=bool(self.include_network),
                    softmax=tuple(softmax), output=kind, output_guessed=guessed,
                    sigmoids=sigmoid_outputs(self.output, estimator))

    # what fit found, as views of the plan
    groups_ = property(lambda self: {name: list(members) for name, members in self.plan_.groups})
    strategy_ = property(lambda self: self.plan_.strategy)
    output_ = property(lambda self: self.plan_.output)
    overwritten_ = property(lambda self: self.plan_.overwritten)
    trainable_ = property(lambda self: list(self.plan_.parameters))
    layer_rules_ = property(lambda self: _layer_rules(self.plan_))

    def _check_output_kind(self, estimator):
        """(kind, guessed) of :func:`skgradunc._outputs.resolve_output`, for ``target``."""
        kind, guessed = resolve_output(self.output, estimator)
        if self.target == "all_ones_sigmoid" and kind != "logits":
            raise ValueError(
                f"target='all_ones_sigmoid' takes per-class sigmoids of the logits, but the "
                f"network returns {kind.replace('_', '-')} (output={self.output!r}); use a "
                "network that returns logits, or another target ('all_ones' reads any output)")
        return kind, guessed

    def transform(self, X):
        """Gradient statistics and softmax features, float64 (n_samples, n_features_out).

        Parameters
        ----------
        X : array-like, tensor, Dataset, SliceDataset or DataLoader, (n_samples, ...)
            The samples, read block by block: a numpy array or ``np.memmap`` (never
            read whole), a tensor (a CUDA tensor is read where it lives), a torch
            ``Dataset`` or ``IterableDataset`` whose items are ``x`` or ``(x, y, ...)``,
            skorch's ``SliceDataset`` (what scikit-learn's splitters can index), or a
            ``DataLoader`` (not shuffling), its batches re-cut to ``batch_size``. uint8
            values are image bytes, scaled by 1/255; anything else must be float.
            Host inputs are read in a background thread, ahead of the computation.

        Returns
        -------
        features : ndarray of float64, shape (n_samples, n_features_out)
            The only memory that grows with the number of samples.
        """
        check_is_fitted(self, "plan_")
        _, _, device = self._check_params()
        if self._what_to_compute() != self._fitted_with:
            raise ValueError("parameters changed since fit; call fit again")
        samples = as_samples(X, self.input_shape_, owner=type(self).__name__)
        with network_lock(self.module_), _network_errors(self.input_shape_), \
                _progress(samples.expected, self.verbose) as progress:
            return compute_features(self.plan_, self.module_, samples, device=device,
                                    batch_size=self.batch_size, max_memory=self.max_memory,
                                    progress=progress)

    def get_feature_names_out(self, input_features=None):
        """Feature names ``"<group>__<statistic>"`` in column order.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (the names do not depend on the input features); present for
            scikit-learn's API.

        Returns
        -------
        feature_names_out : ndarray of str, shape (n_features_out,)
            A copy of ``feature_names_out_``: ``"<group>__<statistic>"``,
            ``"network__<statistic>"``, ``"softmax__entropy"``, ``"softmax__max_prob"``.
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
