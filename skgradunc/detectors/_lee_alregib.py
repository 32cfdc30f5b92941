"""Lee & AlRegib (2020): squared L2 norms of the gradient of the binary cross-entropy
against the all-ones confounding label, one per parameter tensor, fed to a binary
detector of two fully connected layers."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from .._network import find_module
from ..meta import MetaClassifier
from ..transformer import GradientMetricTransformer

__all__ = ["lee_alregib_detector", "lee_alregib_head"]


def lee_alregib_detector(estimator, *, alpha=None, random_state=None, batch_size=256,
                         device="auto", output="auto", pos_label=None):
    """Lee & AlRegib (2020)'s gradient-based detector, as a Pipeline to fit.

    Features: ||grad_theta J||_2^2 for every parameter tensor theta (each weight and
    bias), J the binary cross-entropy of the softmax outputs against the all-ones
    confounding label (``target="all_ones"`` of
    :class:`~skgradunc.GradientMetricTransformer`). Detector: "a binary classifier of two
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
                     *lee_alregib_head(alpha, random_state, pos_label)])


def lee_alregib_head(alpha=None, random_state=None, pos_label=None):
    """The detector's steps after the gradient norms (the reproduction fits them on
    cached norms): square them, then the two-layer binary classifier."""
    return [("squared", FunctionTransformer(np.square, feature_names_out="one-to-one")),
            ("detector", MetaClassifier("nn", alpha=alpha, random_state=random_state,
                                        pos_label=pos_label))]
