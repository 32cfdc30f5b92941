"""Training that never hands back a diverged network."""

from sklearn.base import clone

from ._validation import check_non_negative_int, check_positive_int, check_positive_real
from .callbacks import TrainingDivergedError

__all__ = ["fit_with_recovery"]


def fit_with_recovery(net, X, y, *, retries=2, lr_factor=0.1, seed_step=1, log=None):
    """Fit a clone of ``net``; on divergence retry with a lower rate and a new seed.

    Each retry multiplies the learning rate by ``lr_factor`` and adds ``seed_step``
    to ``random_state`` (0 when it was None), so the outcome stays reproducible.
    The caller's ``net`` is never modified.

    Parameters
    ----------
    net : CNNClassifier (or any estimator with ``lr`` and ``random_state``)
        The unfitted recipe: each attempt fits a clone of it with its own ``lr``
        and ``random_state``.
    X : array-like of shape (n_samples, ...)
        Training inputs, passed to each clone's ``fit``.
    y : array-like of shape (n_samples,)
        Training labels, passed to each clone's ``fit``.
    retries : int, default=2
        Attempts after the first one.
    lr_factor : float, default=0.1
        1 retries at the same rate, with the next seed only.
    seed_step : int, default=1
        What each retry adds to the seed. Where nets are trained with consecutive
        seeds (one per run), a step above their count keeps a retry from repeating
        another run's seed. Not a multiple of 2**32 (torch reads seeds modulo 2**32).
    log : callable or None
        Called with a one-line message before each retry (e.g. ``print``).

    Returns
    -------
    fitted : estimator
        The first clone whose training stayed finite.
    attempts : list of dict
        ``{"lr", "random_state", "diverged"}`` for every attempt, in order.

    Raises
    ------
    ValueError
        Before any training, when ``lr`` is not a positive finite number
        (lowering a NaN rate gives another NaN).
    TrainingDivergedError
        When every attempt diverged.
    """
    check_non_negative_int(retries, "retries")
    check_positive_int(seed_step, "seed_step")
    if seed_step % 2 ** 32 == 0:
        # measured: torch.manual_seed(1 + 2**32) draws what torch.manual_seed(1) draws
        raise ValueError(f"seed_step={seed_step} is a multiple of 2**32: torch's generator "
                         "reads a seed modulo 2**32, so every retry would repeat the first")
    if not 0 < lr_factor <= 1:
        raise ValueError(f"lr_factor must be in (0, 1], got {lr_factor!r}")
    params = net.get_params(deep=False)
    lr, seed = params["lr"], params.get("random_state")
    # a NaN, infinite or non-positive rate stays one after multiplying by lr_factor
    check_positive_real(lr, "lr")
    attempts = []
    for attempt in range(retries + 1):
        candidate = clone(net).set_params(lr=lr, random_state=seed)
        try:
            candidate.fit(X, y)
        except TrainingDivergedError as exc:
            attempts.append({"lr": lr, "random_state": seed, "diverged": True})
            if attempt == retries:
                raise TrainingDivergedError(
                    f"all {retries + 1} training attempts diverged (last: {exc})") from exc
            lr, seed = lr * lr_factor, (0 if seed is None else seed) + seed_step
            if log is not None:
                log(f"{exc}\n-> retrying with lr={lr:g}, random_state={seed}")
            continue
        attempts.append({"lr": lr, "random_state": seed, "diverged": False})
        return candidate, attempts
