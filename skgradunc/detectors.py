"""The other gradient detectors as their authors define them, on this package's engine.

* :func:`gradnorm_score` - GradNorm (Huang, Geng & Li 2021): the L1 norm of the gradient
  of KL(uniform || softmax(z / T)) with respect to the last layer's weight. Higher means
  in-distribution, as this package's confidences.
* :func:`lee_alregib_detector` - Lee & AlRegib 2020: squared L2 norms of the gradient of
  the binary cross-entropy against the all-ones confounding label, one per parameter
  tensor, fed to a binary detector of two fully connected layers trained on
  in-distribution against unfamiliar samples; an sklearn Pipeline to fit.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ._network import find_module
from .meta import MetaClassifier
from .transformer import GradientMetricTransformer

__all__ = ["gradnorm_score", "lee_alregib_detector", "last_layer_weight"]


def last_layer_weight(module):
    """Name of the last 2-D ``weight`` in the module's parameter order (a classifier's
    last fully connected layer: ``fc.weight``, ``heads.head.weight``), frozen or not:
    GradNorm is defined on the last layer, and gradients can be taken with respect to
    a frozen weight.

    Parameters
    ----------
    module : torch.nn.Module
        The classifier's network.

    Returns
    -------
    str
        The parameter's name, as in ``module.named_parameters()``.

    Raises
    ------
    ValueError
        When the module has no 2-D parameter named ``weight`` (or no parameters at
        all).

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import last_layer_weight
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4 * 26 * 26, 10))
    >>> last_layer_weight(net)
    '2.weight'
    """
    found = [name for name, weight in module.named_parameters()
             if name.rsplit(".", 1)[-1] == "weight" and weight.dim() == 2]
    if not found:
        raise ValueError(f"{type(module).__name__} has no 2-D weight (a Linear layer's); "
                         "name the parameter GradNorm takes with parameter=")
    return found[-1]


def gradnorm_score(estimator, X, *, temperature=1.0, parameter=None, batch_size=256,
                   device="auto", output="auto"):
    """GradNorm's score (Huang, Geng & Li 2021) of each sample.

    S(x) = || d KL(u || softmax(f(x) / T)) / d W ||_1, W the last layer's weight:
    ``network``-free, one parameter's L1 norm of the gradient at
    ``target="uniform"`` (the cross-entropy to the uniform distribution differs
    from the KL divergence by a constant). Higher means in-distribution (and,
    as everywhere in this package, more likely correct).

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        The classifier, as for :class:`GradientMetricTransformer`.
    X : array-like, tensor, Dataset, SliceDataset or DataLoader
        The samples, as for :meth:`GradientMetricTransformer.transform`.
    temperature : float, default=1.0
        GradNorm's T (their ImageNet experiments use 1).
    parameter : str, optional
        The weight whose gradient is taken; default: :func:`last_layer_weight`.
    batch_size : int, default=256
        Samples per chunk of the gradient computation, as for
        :class:`GradientMetricTransformer`.
    device : str, default="auto"
        Where gradients are computed: ``"auto"`` uses CUDA when available, else the
        CPU (as for :class:`GradientMetricTransformer`).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns, as for :class:`GradientMetricTransformer`.

    Returns
    -------
    scores : ndarray of float64, shape (n_samples,)
        The L1 norm of each sample's gradient; higher means more likely in
        distribution.

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import gradnorm_score
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> gradnorm_score(net, torch.randn(5, 4).numpy(), device="cpu").shape
    (5,)
    """
    module = find_module(estimator)   # refuses an unfitted net: GradNorm never trains one
    name = parameter if parameter is not None else last_layer_weight(module)
    features = GradientMetricTransformer(
        estimator, target="uniform", temperature=temperature, groups={"gradnorm": [name]},
        statistics=["l1"], include_network=False, softmax_features=False,
        batch_size=batch_size, device=device, output=output).fit_transform(X)
    return features[:, 0]


def lee_alregib_detector(estimator, *, alpha=None, random_state=None, batch_size=256,
                         device="auto", output="auto", pos_label=None):
    """Lee & AlRegib (2020)'s gradient-based detector, as a Pipeline to fit.

    Features: ||grad_theta J||_2^2 for every parameter tensor theta (each weight and
    bias), J the binary cross-entropy of the softmax outputs against the all-ones
    confounding label (``target="all_ones"``, see
    :func:`skgradunc.gradients.target_loss`). Detector: "a binary classifier of two
    fully connected layers" - :class:`MetaClassifier`'s ``"nn"`` preset (one hidden
    layer of 15 ReLUs on standardised features), the paper's NN meta classifier, so
    the comparison with it is one of features alone. The detector's hidden width and
    training are not published (see ``../shared/research``); these are ours.

    Fit it on in-distribution samples labelled 1 and unfamiliar ones (out of
    distribution, corrupted; or wrong predictions) labelled 0, e.g. with
    :func:`skgradunc.correctness_target`; ``predict_proba(X)[:, 1]`` is then a
    confidence, higher = more likely in distribution / correct.

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        An unfitted net is refused (the pipeline's labels are in / out of
        distribution, not the classes it would be trained on).
    alpha : float, optional
        L2 penalty of the detector (default: the ``"nn"`` preset's 1e-3).
    random_state : int or None, default=None
        Seeds the detector (:class:`MetaClassifier`'s ``"nn"`` preset): its
        initialisation and batch shuffling.
    batch_size : int, default=256
        Samples per chunk of the gradient computation, as for
        :class:`GradientMetricTransformer`.
    device : str, default="auto"
        Where gradients are computed: ``"auto"`` uses CUDA when available, else the
        CPU (as for :class:`GradientMetricTransformer`).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns, as for :class:`GradientMetricTransformer`.
    pos_label : int, str or None, default=None
        The label of in-distribution (or correct) samples, whose probability is
        ``predict_proba(X)[:, 1]``; None: the larger of two numbers (1 of 0 / 1).
        Labels that are not numbers (``"in"`` / ``"out"``) must name it.

    Returns
    -------
    Pipeline
        ``gradients`` (:class:`GradientMetricTransformer`), ``squared``,
        ``detector`` (:class:`MetaClassifier`).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skgradunc.detectors import lee_alregib_detector
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> X = np.random.RandomState(0).normal(size=(40, 4)).astype(np.float32)
    >>> y = np.r_[np.ones(20), np.zeros(20)]
    >>> detector = lee_alregib_detector(net, random_state=0, device="cpu").fit(X, y)
    >>> detector.predict_proba(X[:2]).shape
    (2, 2)
    """
    # an unfitted net would be trained on the detector's in/out labels: refused here
    find_module(estimator)
    gradients = GradientMetricTransformer(
        estimator, target="all_ones", groups="parameter", statistics=["l2"],
        include_network=False, softmax_features=False, batch_size=batch_size, device=device,
        output=output)
    return Pipeline([("gradients", gradients),
                     *_lee_alregib_head(alpha, random_state, pos_label)])


def _lee_alregib_head(alpha=None, random_state=None, pos_label=None):
    """The detector's steps after the gradient norms (the reproduction fits them on
    cached norms): square them, then the two-layer binary classifier."""
    return [("squared", FunctionTransformer(np.square, feature_names_out="one-to-one")),
            ("detector", MetaClassifier("nn", alpha=alpha, random_state=random_state,
                                        pos_label=pos_label))]
