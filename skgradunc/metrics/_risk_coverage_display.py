"""The risk-coverage curve as a plot, in scikit-learn's ``*Display`` convention."""

from .._confidence import confidence_of
from ._selective import aurc, risk_coverage_curve

__all__ = ["RiskCoverageDisplay"]


class RiskCoverageDisplay:
    """Risk-coverage curve: the fraction of wrong answers among the accepted inputs
    against the fraction accepted, as the threshold on the confidence falls.

    Create it with :meth:`from_estimator` or :meth:`from_predictions`; the constructor
    only stores what is drawn.

    Parameters
    ----------
    coverage : ndarray
        Fractions of inputs accepted, increasing (:func:`risk_coverage_curve`).
    risk : ndarray
        Selective risk at each coverage.
    aurc : float, optional
        The area under the curve, shown in the legend.
    name : str, optional
        The curve's name in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The curve.
    ax_ : matplotlib Axes
        The axes it is drawn on.
    figure_ : matplotlib Figure
        The figure holding them.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skgradunc.metrics import RiskCoverageDisplay
    >>> display = RiskCoverageDisplay.from_predictions([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6],
    ...                                                name="softmax maximum")
    >>> display.line_.get_label()
    'softmax maximum (AURC = 0.146)'
    """

    def __init__(self, coverage, risk, *, aurc=None, name=None):
        self.coverage = coverage
        self.risk = risk
        self.aurc = aurc
        self.name = name

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure's axes by default.
        name : str, optional
            The legend's name, overriding the stored one.
        **kwargs
            Passed to matplotlib's ``plot``.

        Returns
        -------
        display : RiskCoverageDisplay
            ``self``, with ``line_``, ``ax_`` and ``figure_``.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        name = self.name if name is None else name
        label = name
        if self.aurc is not None:
            area = f"AURC = {self.aurc:.3f}"
            label = area if name is None else f"{name} ({area})"
        # risk[j] holds on (coverage[j-1], coverage[j]]: the steps the AURC sums
        self.line_, = ax.plot([0.0, *self.coverage], [self.risk[0], *self.risk],
                              drawstyle="steps-pre", label=label, **kwargs)
        ax.set_xlabel("Coverage (fraction of inputs accepted)")
        ax.set_ylabel("Selective risk (wrong among accepted)")
        ax.set_xlim(0, 1)
        if label is not None:
            ax.legend(loc="upper left")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(cls, y_correct, confidence, *, name=None, ax=None, **kwargs):
        """Draw the curve of given confidences.

        Parameters
        ----------
        y_correct : array-like of {0, 1}, shape (n_samples,)
            1 where the prediction is correct, 0 where it is wrong or the input is out
            of distribution.
        confidence : array-like of float, shape (n_samples,)
            Higher when the prediction is more likely correct.
        name : str, optional
            The legend's name.
        ax : matplotlib Axes, optional
            Where to draw.
        **kwargs
            Passed to matplotlib's ``plot``.

        Returns
        -------
        display : RiskCoverageDisplay
            The drawn display, with ``line_``, ``ax_`` and ``figure_``.
        """
        coverage, risk, _, _ = risk_coverage_curve(y_correct, confidence)
        display = cls(coverage, risk, aurc=aurc(y_correct, confidence), name=name)
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y_correct, *, response_method="auto", name=None,
                       ax=None, **kwargs):
        """Draw the curve of a fitted estimator's confidence.

        Parameters
        ----------
        estimator : fitted estimator or callable
            A meta classifier (``predict_proba``'s column of class 1, "correct"), an
            outlier detector (``decision_function`` or ``score_samples``), a network
            (``response_method="max_proba"``: the softmax maximum) or a function
            ``f(X) -> scores``.
        X : array-like
            What the estimator takes.
        y_correct : array-like of {0, 1}, shape (n_samples,)
            1 where the network's prediction is correct.
        response_method : {"auto", "predict_proba", "decision_function", "score_samples", \
                "max_proba"}, default="auto"
            Which output is the confidence; "auto" takes the first of the first three
            the estimator has.
        name : str, optional
            The legend's name; the estimator's class name by default.
        ax : matplotlib Axes, optional
            Where to draw.
        **kwargs
            Passed to matplotlib's ``plot``.

        Returns
        -------
        display : RiskCoverageDisplay
            The drawn display, with ``line_``, ``ax_`` and ``figure_``.
        """
        confidence = confidence_of(estimator, X, response_method)
        if name is None:
            name = getattr(estimator, "__name__", type(estimator).__name__)
        return cls.from_predictions(y_correct, confidence, name=name, ax=ax, **kwargs)
