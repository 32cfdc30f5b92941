"""MetaClassifier: predicts from metric features whether a prediction is correct."""

import numbers

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["MetaClassifier", "PRESETS", "check_binary_target", "logistic_regression"]

# The paper's meta classifiers (section 3). Penalties in scikit-learn's form:
#   C * sum(log-loss) + l1_ratio * |w|_1 + (1 - l1_ratio) / 2 * |w|_2^2
# which is sum(log-loss) + lambda1 |w|_1 + lambda2 / 2 |w|_2^2 with
# C = 1 / (lambda1 + lambda2) and l1_ratio = lambda1 / (lambda1 + lambda2).
PRESETS = {
    "glm": {"C": np.inf, "l1_ratio": 0.0},          # unpenalised logistic regression
    "lasso": {"C": 1.0, "l1_ratio": 1.0},           # lambda1 = 1
    "ridge": {"C": 1.0, "l1_ratio": 0.0},           # lambda2 = 1
    "elastic_net": {"C": 1.0, "l1_ratio": 0.5},     # lambda1 = lambda2 = 0.5
    "nn": {"alpha": 1e-3},                          # 15 ReLUs, L2 weight decay 1e-3, SGD
}
_PENALTY_PARAMETER = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 8)


def logistic_regression(C, l1_ratio, max_iter, random_state):
    """LogisticRegression with (C, l1_ratio) on any scikit-learn >= 1.6.

    C = inf is unpenalised; l1_ratio 1 / 0 / between is L1 / L2 / elastic net.
    scikit-learn 1.8 replaced ``penalty`` by exactly this pair.
    """
    solver = "saga" if (l1_ratio > 0 and np.isfinite(C)) else "lbfgs"
    kwargs = {"C": C, "l1_ratio": l1_ratio}
    if _PENALTY_PARAMETER:  # pragma: no cover - exercised on scikit-learn < 1.8 only
        if not np.isfinite(C):
            kwargs = {"penalty": None}
        else:
            kwargs["penalty"] = {0.0: "l2", 1.0: "l1"}.get(float(l1_ratio), "elasticnet")
    return LogisticRegression(solver=solver, max_iter=max_iter, random_state=random_state,
                              tol=1e-4, **kwargs)


class BinaryMetaMixin:
    """What the binary meta classifiers share: two classes (1 = correct, 0 = wrong /
    OoD) and ``predict`` from ``predict_proba``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def predict(self, X):
        """The more likely class (1 = correct)."""
        correct = self.predict_proba(X)[:, 1] >= 0.5  # checks fitting before classes_
        return self.classes_[correct.astype(int)]


class MetaClassifier(BinaryMetaMixin, ClassifierMixin, BaseEstimator):
    """Predict P(prediction correct) from uncertainty features.

    The paper's meta classifiers, as presets, with the features standardised
    inside (so coefficients and penalties are comparable across features):

    =================  ========================================================
    ``"glm"``          unpenalised logistic regression
    ``"lasso"``        L1-penalised logistic regression, lambda = 1 (``C=1``)
    ``"ridge"``        L2-penalised logistic regression, lambda = 1 (``C=1``)
    ``"elastic_net"``  lambda1 = lambda2 = 0.5 (``C=1, l1_ratio=0.5``)
    ``"nn"``           one hidden layer of 15 ReLUs, L2 weight decay 1e-3
                       (``alpha``), trained with SGD (momentum 0.9)
    =================  ========================================================

    or any scikit-learn classifier given as ``method``.

    **How lambda maps onto scikit-learn.** The logistic presets minimise
    ``sum(log-loss) + lambda1 * |w|_1 + lambda2 / 2 * |w|_2^2``, which is
    scikit-learn's ``C * sum(log-loss) + l1_ratio * |w|_1 + (1 - l1_ratio) / 2 *
    |w|_2^2`` with ``C = 1 / (lambda1 + lambda2)`` and
    ``l1_ratio = lambda1 / (lambda1 + lambda2)``. ``C`` is the parameter to
    search: ``GridSearchCV(pipe, {"metaclassifier__C": [0.01, 0.1, 1, 10]})``.
    The network preset's two-class logistic output is the same model as a
    two-way softmax.

    Parameters
    ----------
    method : str or classifier, default="lasso"
        A preset of the table above (``"glm"``, ``"lasso"``, ``"ridge"``,
        ``"elastic_net"``, ``"nn"``), or a scikit-learn classifier, which is cloned
        and fitted on the (standardised) features.
    C : float, optional
        Inverse penalty strength of the logistic presets (default: the preset's).
        Not allowed for ``"glm"`` (unpenalised) or ``"nn"``.
    l1_ratio : float in [0, 1], optional
        Only for ``"elastic_net"`` (default 0.5).
    alpha : float, optional
        L2 penalty of ``"nn"`` (default 1e-3).
    standardize : bool, default=True
        Standardise features (zero mean, unit variance) before the model.
    max_iter : int, optional
        Iteration limit of the solver (default 20000 for logistic, 1000 epochs for nn).
    random_state : int or None, default=None
        Passed to a preset's model: seeds the ``"nn"`` preset's initialisation and
        batch shuffling, and the ``saga`` solver of the L1 and elastic-net presets.
        Not used with a classifier given as ``method``.
    pos_label : int, str or None, default=None
        The target value meaning "correct" (or "in distribution"). None: the larger
        of two numbers (1 of 0 / 1); labels that are not numbers (``"in"`` /
        ``"out"``) must name it, or fit refuses them.

    Attributes
    ----------
    estimator_ : Pipeline
        The fitted (scaler +) model.
    classes_ : ndarray
        The two target values, ``[negative, positive]``: ``predict_proba(X)[:, 1]``
        is P(``classes_[1]``), P(correct).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame (e.g. from ``set_output(transform="pandas")``).
    n_iter_ : int
        Iterations the solver ran (when the model reports it).

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc import MetaClassifier
    >>> rng = np.random.RandomState(0)
    >>> y = rng.randint(0, 2, 200)
    >>> X = np.c_[y + rng.normal(0, 0.5, 200), rng.normal(size=200)]
    >>> meta = MetaClassifier("lasso").fit(X, y)
    >>> meta.predict_proba(X[:2]).shape, meta.classes_.tolist()
    ((2, 2), [0, 1])
    """

    def __init__(self, method="lasso", *, C=None, l1_ratio=None, alpha=None, standardize=True,
                 max_iter=None, random_state=None, pos_label=None):
        self.method = method
        self.pos_label = pos_label
        self.C = C
        self.l1_ratio = l1_ratio
        self.alpha = alpha
        self.standardize = standardize
        self.max_iter = max_iter
        self.random_state = random_state

    def _model(self, n_samples):
        method = self.method
        if not isinstance(method, str):
            if not is_classifier(method):
                raise TypeError(f"method must be one of {sorted(PRESETS)} or a scikit-learn "
                                f"classifier, got {type(method).__name__}")
            if any(v is not None for v in (self.C, self.l1_ratio, self.alpha)):
                raise ValueError("C, l1_ratio and alpha apply to the presets only; set the "
                                 "classifier's own parameters instead")
            return clone(method)
        if method not in PRESETS:
            raise ValueError(f"unknown method {method!r}; choose one of {sorted(PRESETS)} "
                             "or pass a scikit-learn classifier")
        for name, value, allowed in (
                ("C", self.C, ("lasso", "ridge", "elastic_net")),
                ("l1_ratio", self.l1_ratio, ("elastic_net",)),
                ("alpha", self.alpha, ("nn",))):
            if value is not None and method not in allowed:
                raise ValueError(f"{name} does not apply to method={method!r} (only to "
                                 f"{', '.join(allowed)})")
        preset = PRESETS[method]
        if method == "nn":
            alpha = preset["alpha"] if self.alpha is None else self.alpha
            _check_positive(alpha, "alpha", allow_zero=True)
            # lr 0.01 and tol 1e-3 measured on the digits default's gradient features:
            # converges in ~110 epochs without warnings and ranks best (cross-validated
            # AUROC 0.926 vs 0.85-0.89 for lr 0.1 or tol 1e-4, which overfit)
            return MLPClassifier(
                hidden_layer_sizes=(15,), activation="relu", solver="sgd", alpha=alpha,
                momentum=0.9, learning_rate_init=0.01, learning_rate="adaptive",
                batch_size=min(256, n_samples), max_iter=self.max_iter or 1000, tol=1e-3,
                n_iter_no_change=10, random_state=self.random_state)
        C = preset["C"] if self.C is None else self.C
        l1_ratio = preset["l1_ratio"] if self.l1_ratio is None else self.l1_ratio
        _check_positive(C, "C")
        if not isinstance(l1_ratio, numbers.Real) or not 0 <= l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio!r}")
        return logistic_regression(C, float(l1_ratio), self.max_iter or 20000, self.random_state)

    def fit(self, X, y):
        """Fit on features X and the meta target y (1 correct, 0 wrong / OoD).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Uncertainty features, e.g. the output of
            :class:`~skgradunc.GradientMetricTransformer`.
        y : array-like of shape (n_samples,)
            The meta target, with exactly two values; ``pos_label`` (default: the
            larger one, 1) means "correct", e.g. from
            :func:`~skgradunc.correctness_target`.

        Returns
        -------
        self : MetaClassifier
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        model = self._model(len(X))
        check_classification_targets(y)
        self.classes_ = check_binary_target(y, self.pos_label)
        steps = [StandardScaler(), model] if self.standardize else [model]
        self.estimator_ = make_pipeline(*steps).fit(X, (y == self.classes_[1]).astype(int))
        if hasattr(self.estimator_[-1], "n_iter_"):
            self.n_iter_ = int(np.max(self.estimator_[-1].n_iter_))
        return self

    def predict_proba(self, X):
        """(n_samples, 2): P(class 0 = wrong / OoD), P(class 1 = correct).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Column 0: P(wrong / OoD); column 1: P(correct).
        """
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.estimator_.predict_proba(X)

    def decision_function(self, X):
        """Confidence in "correct" as log-odds: higher = more likely correct.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        log_odds : ndarray of shape (n_samples,)
            The log-odds log(p / (1 - p)) of p = P(correct), with p clipped to
            [1e-15, 1 - 1e-15] so that the values stay finite.
        """
        p = np.clip(self.predict_proba(X)[:, 1], 1e-15, 1 - 1e-15)
        return np.log(p) - np.log1p(-p)


def check_binary_target(y, pos_label=None):
    """The two classes of a meta target as ``[negative, positive]``, or a clear error.

    ``pos_label``: the label meaning "correct" / "in distribution"; None: the larger of
    two numbers or booleans (1, True). Other labels (strings) must say which is positive:
    sorting them would make the positive class whichever sorts last."""
    classes = np.unique(y)
    if len(classes) != 2:
        what = "one class only" if len(classes) < 2 else f"{len(classes)} classes"
        raise ValueError(
            f"Only binary classification is supported. The meta target must be 1 (correct) "
            f"or 0 (wrong / OoD); got {what}: {classes[:10].tolist()}. Both correct and wrong "
            "predictions are needed.")
    if pos_label is None:
        if classes.dtype.kind not in "biuf":
            raise ValueError(
                f"the target's labels {classes.tolist()} are not 0 / 1: say which one means "
                f"correct (in distribution) with pos_label, e.g. pos_label={classes[0]!r}")
        return classes
    matches = [c for c in classes.tolist() if c == pos_label]
    if not matches:
        raise ValueError(f"pos_label={pos_label!r} is not one of the target's labels "
                         f"{classes.tolist()}")
    positive = classes.tolist().index(matches[0])
    return classes[[1 - positive, positive]]


def _check_positive(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Real) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"number, got {value!r}")
