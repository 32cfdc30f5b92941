"""The reproduction's figures: the paper's Figure 2 (distributions of entropy, L2 norm
and minimum per concept, one run), the reliability diagram of the probabilities of
'correct' and the LASSO's coefficients per layer and statistic (pooled over runs)."""

from contextlib import contextmanager

import numpy as np

from ..io import atomic_path

__all__ = ["write_figure2", "write_reliability", "write_coefficients", "FIGURE_METRICS"]

FIGURE_METRICS = [("softmax__entropy", "Entropy"), ("network__l2", "Euclidean norm"),
                  ("network__min", "Minimum")]


@contextmanager
def _figure(path, *args, **kwargs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(*args, **kwargs)
    try:
        yield figure, axes
        figure.tight_layout()
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=120, format="png")
    finally:
        plt.close(figure)


def write_figure2(path, run, concepts):
    columns = list(run["columns__predicted"])
    test = run["test__predicted"]
    groups = {"correct": test[run["y_test"] == 1], "incorrect": test[run["y_test"] == 0]}
    groups.update({c: run[f"{c}__predicted"] for c in concepts})
    groups = {name: values for name, values in groups.items() if len(values) > 1}
    colours = ["tab:green", "tab:red", "tab:blue", "tab:gray", "tab:purple", "tab:orange",
               "tab:brown", "tab:pink", "tab:olive"]
    with _figure(path, 1, len(FIGURE_METRICS), figsize=(4.5 * len(FIGURE_METRICS), 4)) as (
            _, axes):
        for ax, (column, title) in zip(axes, FIGURE_METRICS):
            j = columns.index(column)
            data = [values[:, j] for values in groups.values()]
            parts = ax.violinplot(data, showmedians=True)
            for body, colour in zip(parts["bodies"], colours):
                body.set_facecolor(colour)
                body.set_alpha(0.6)
            ax.set_xticks(np.arange(1, len(groups) + 1), list(groups), rotation=35, ha="right")
            ax.set_title(title)


def write_reliability(path, bins, rows):
    """Reliability diagram: per bin, the share of correct predictions against the mean
    probability of 'correct' (bins with samples only), and below it how many samples
    each bin holds. ``bins``: :func:`~skgradunc.experiments.paper.tables.pool_reliability`."""
    with _figure(path, 2, 1, figsize=(5.5, 6.5), sharex=True,
                 gridspec_kw={"height_ratios": [3, 1]}) as (_, (top, bottom)):
        top.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
        n_bins = len(next(iter(bins.values()))[0])
        centres = (np.arange(n_bins) + 0.5) / n_bins
        width = 1 / n_bins / (len(rows) + 1)
        for i, row in enumerate(rows):
            counts, correct, total = (np.asarray(v, dtype=float) for v in bins[row])
            filled = counts > 0
            top.plot(total[filled] / counts[filled], correct[filled] / counts[filled], "o-",
                     label=row)
            bottom.bar(centres - 0.5 / n_bins + (i + 1) * width, counts, width=width,
                       label=row)
        top.set_ylabel("share correct")
        top.set_title("Reliability on the test set (all runs)")
        top.legend(fontsize=8)
        bottom.set_yscale("log")
        bottom.set_xlabel("predicted probability of 'correct'")
        bottom.set_ylabel("images")


def write_coefficients(path, table):
    """Heat map of the LASSO's mean coefficient per layer (rows) and statistic."""
    layers = list(table)
    statistics = list(dict.fromkeys(s for cells in table.values() for s in cells))
    values = np.full((len(layers), len(statistics)), np.nan)
    for i, layer in enumerate(layers):
        for j, statistic in enumerate(statistics):
            if statistic in table[layer]:
                values[i, j] = table[layer][statistic]["coefficient"]["mean"]
    limit = np.nanmax(np.abs(values)) or 1.0
    with _figure(path, figsize=(1 + 0.9 * len(statistics), 1 + 0.6 * len(layers))) as (
            figure, ax):
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(len(statistics)), statistics, rotation=35, ha="right")
        ax.set_yticks(np.arange(len(layers)), layers)
        ax.set_title("LASSO coefficients (mean over runs)")
        figure.colorbar(image, ax=ax, label="log-odds of 'correct' per std")
