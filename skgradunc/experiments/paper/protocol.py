"""The paper's protocol: K runs, Tables 1-3, Figure 2, a printed summary."""

import time
from dataclasses import asdict, replace
from pathlib import Path

from ... import __version__
from ..._device import resolve_device
from ..io import write_json
from ..parallel_runs import computed_runs, resolve_threads
from ..scoring import aggregate
from .data import load_experiment_data
from .figures import write_coefficients, write_figure2, write_reliability
from .report import write_reports
from .runs import compute_run, split_sizes
from .tables import COEFFICIENT_TABLE, pool_reliability, run_tables

__all__ = ["run_paper_protocol", "resolve_config", "split_images", "summary"]


SPLIT_PARTS = ("train", "validation", "test")


def split_images(config, data):
    """``{"train": n, "validation": n, "test": n}``: the images each run's split has
    (``config`` resolved); a part left empty is refused, naming the split."""
    sizes = dict(zip(SPLIT_PARTS, split_sizes(len(data.X), config.split)))
    empty = [part for part, size in sizes.items() if size == 0]
    if empty:
        raise ValueError(f"split {config.split} leaves no {empty[0]} images of the "
                         f"{len(data.X)} in-distribution images of {config.data}; give "
                         f"larger fractions")
    return sizes


def resolve_config(config, data):
    """``config`` with the values a run uses, as plain Python numbers (what the cache
    and ``config.json`` record): the data set's split, epochs and lr where None, the
    split as floats, ``root`` as an absolute path and the threads per run."""
    split = data.split if config.split is None else config.split
    return replace(config, runs=int(config.runs), seed=int(config.seed),
                   epochs=int(data.epochs if config.epochs is None else config.epochs),
                   lr=float(data.lr if config.lr is None else config.lr),
                   split=tuple(float(v) for v in split),
                   batch_size=int(config.batch_size), ood_size=int(config.ood_size),
                   root=None if config.root is None else str(Path(config.root).resolve()),
                   threads=resolve_threads(config))


def run_paper_protocol(config, log=print):
    """The paper's protocol (Oberdiek et al. 2018): K runs, Tables 1-3, Figure 2 and the
    reliability and coefficient figures under ``config.out``; a printed summary.

    ``config`` is checked, with the protocol's defaults and its output folder made
    (:func:`~skgradunc.experiments.run_protocol` does both). Returns the aggregated
    results ``{table: {row: {column: {score: {mean, sem, runs}}}}}``.
    """
    start = time.perf_counter()
    out = Path(config.out)
    data = load_experiment_data(config.data, config.root, ood_size=config.ood_size,
                                seed=config.seed)
    config = resolve_config(config, data)
    images = split_images(config, data)
    concepts = list(data.ood)
    log(f"skgradunc {__version__} reproduce: {config.data}, {len(data.X)} in-distribution "
        f"images, unknown concepts {concepts}, {config.runs} runs -> {out}")
    per_run, first, training, reliability = [], None, [], []
    for run, arrays in enumerate(computed_runs(compute_run, config, data, log)):
        first = first or arrays
        reliability.append({})
        per_run.append(run_tables(arrays, concepts, list(data.known_unknowns),
                                  random_state=config.seed + run, reliability=reliability[-1]))
        training.append({"run": run + 1, "test_accuracy": float(arrays["y_test"].mean()),
                         "lr": float(arrays["lr"]),
                         "random_state": int(arrays["random_state"]),
                         "diverged_attempts": int(arrays["diverged_attempts"])})
    results = aggregate(per_run)
    split = tuple(round(s, 4) for s in config.split)
    accuracy = [t["test_accuracy"] for t in training]
    recovered = [t["run"] for t in training if t["diverged_attempts"]]
    header = (f"Data: `{config.data}`; {config.runs} runs; split {split}: "
              f"{images['train']} train / {images['validation']} validation / "
              f"{images['test']} test images; CNN test accuracy "
              f"{100 * min(accuracy):.2f}-{100 * max(accuracy):.2f} % (mean "
              f"{100 * sum(accuracy) / len(accuracy):.2f} %); unknown concepts: "
              f"{', '.join(concepts)}; known unknowns (Table 3): "
              f"{', '.join(data.known_unknowns)}.")
    if recovered:
        header += (f" Training diverged and was started again with another seed in run(s) "
                   f"{', '.join(map(str, recovered))} (see config.json).")
    write_reports(out, results, header)
    write_figure2(out / "figure2.png", first, concepts)
    write_reliability(out / "reliability.png", pool_reliability(reliability),
                      _headline_rows(results))
    write_coefficients(out / "lasso_coefficients.png", results[COEFFICIENT_TABLE])
    seconds = time.perf_counter() - start
    # ood_size is a ceiling: the images each concept actually had are recorded beside it
    write_json(out / "config.json", {**asdict(config), "device": resolve_device(config.device),
                                     "split_images": images,
                                     "ood_images": {c: len(X) for c, X in data.ood.items()},
                                     "seconds": seconds, "version": __version__,
                                     "training": training})
    log(summary(results, seconds, out))
    return results


def _headline_rows(results):
    """The reliability diagram's rows (the last two also close the summary): the softmax
    baseline, Table 2's LASSO, and Table 3's NN and Lee & AlRegib's detector with every
    known unknown."""
    table3 = list(results["Table 3"])
    return ["Softmax baseline", "LASSO",
            [r for r in table3 if r.startswith("NN: ")][-1],
            [r for r in table3 if r.startswith("Lee & AlRegib: ")][-1]]


def summary(results, seconds, out):
    lines = [f"done in {seconds:.0f} s; tables and figures in {out}/",
             "AUROC (%)             wrong    All"]
    rows = [("Table 1", "Softmax baseline"), ("Table 1", "Entropy"),
            ("Table 1", "Euclidean norm"), ("Table 2", "LASSO")]
    rows += [("Table 3", row) for row in _headline_rows(results)[2:]]
    for table, row in rows:
        cells = results[table][row]
        lines.append(f"{row[:20]:<20}{100 * cells['wrong']['AUROC']['mean']:>7.2f}"
                     f"{100 * cells['All']['AUROC']['mean']:>7.2f}"
                     + (f"   ({row})" if len(row) > 20 else ""))
    return "\n".join(lines)
