"""Figure 2: distributions of entropy, L2 norm and minimum per concept (one run)."""

import numpy as np

from .io import atomic_path

__all__ = ["write_figure2", "FIGURE_METRICS"]

FIGURE_METRICS = [("softmax__entropy", "Entropy"), ("network__l2", "Euclidean norm"),
                  ("network__min", "Minimum")]


def write_figure2(path, run, concepts):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(run["columns__predicted"])
    test = run["test__predicted"]
    groups = {"correct": test[run["y_test"] == 1], "incorrect": test[run["y_test"] == 0]}
    groups.update({c: run[f"{c}__predicted"] for c in concepts})
    groups = {name: values for name, values in groups.items() if len(values) > 1}
    colours = ["tab:green", "tab:red", "tab:blue", "tab:gray", "tab:purple", "tab:orange",
               "tab:brown", "tab:pink", "tab:olive"]
    figure, axes = plt.subplots(1, len(FIGURE_METRICS), figsize=(4.5 * len(FIGURE_METRICS), 4))
    for ax, (column, title) in zip(axes, FIGURE_METRICS):
        j = columns.index(column)
        data = [values[:, j] for values in groups.values()]
        parts = ax.violinplot(data, showmedians=True)
        for body, colour in zip(parts["bodies"], colours):
            body.set_facecolor(colour)
            body.set_alpha(0.6)
        ax.set_xticks(np.arange(1, len(groups) + 1), list(groups), rotation=35, ha="right")
        ax.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
