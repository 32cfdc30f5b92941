"""UQGAN's MNIST 0-4 benchmark (``skgradunc reproduce --protocol uqgan``): K runs, the
table beside the published one, a printed summary; resumable as the paper's protocol."""

import time
from dataclasses import asdict, replace
from pathlib import Path

from ... import __version__
from ..._device import resolve_device
from ..io import write_json
from ..parallel_runs import computed_runs, resolve_threads
from ..scoring import aggregate
from .data import load_uqgan_data
from .report import uqgan_summary, write_uqgan_report
from .runs import PRESETS, compute_uqgan_run, validation_size
from .tables import MAIN_TABLE, uqgan_run_tables

__all__ = ["run_uqgan_protocol"]


def _resolved(config):
    """``config`` as plain Python values, with ``root`` absolute (what the cache records)
    and the threads per run."""
    return replace(config, runs=int(config.runs), seed=int(config.seed),
                   batch_size=int(config.batch_size), ood_size=int(config.ood_size),
                   root=str(Path(config.root).resolve()), threads=resolve_threads(config))


def _split_images(data):
    """The images each run trains on, holds out for validation and tests on."""
    n_validation = validation_size(len(data.X_train))
    return {"train": len(data.X_train) - n_validation, "validation": n_validation,
            "test": len(data.X_test)}


def _header(config, data, results):
    budget = PRESETS[config.preset]
    images = _split_images(data)
    accuracy = {row: 100 * results[MAIN_TABLE][row]["test"]["Accuracy"]["mean"]
                for row in ("Max. softmax", "One-vs-all", "UQGAN")}
    return (f"Preset `{config.preset}` ({budget['softmax_epochs']} epochs of the softmax "
            f"LeNet-5, {budget['one_vs_all_epochs']} of the one-vs-all LeNet-5; UQGAN: "
            f"auto-encoder epochs {budget['cae_epochs']}, iterations {budget['iterations']}"
            f"); {config.runs} run(s). In distribution: MNIST 0-4 at 28x28, "
            f"{images['train']} training and {images['validation']} validation "
            f"images (a random part of the official training images per run; the meta "
            f"classifiers' training set), {images['test']} test images. Unknown concepts: "
            + ", ".join(f"{c} ({len(X)})" for c, X in data.ood.items())
            + f"; known unknowns: {', '.join(data.known_unknowns)}. Mean test accuracy: "
            + ", ".join(f"{row} {value:.2f} %" for row, value in accuracy.items()) + ".")


def run_uqgan_protocol(config, log=print):
    """Run (or resume) UQGAN's MNIST 0-4 benchmark; write its tables under ``config.out``.

    ``config`` is a :class:`~skgradunc.experiments.ReproduceConfig` with
    ``protocol="uqgan"`` that passed :func:`~skgradunc.experiments.check_config`.
    Returns the aggregated results ``{table: {row: {column: {score: {mean, sem, runs}}}}}``.
    """
    start = time.perf_counter()
    out = Path(config.out)
    data = load_uqgan_data(config.root, ood_size=config.ood_size, seed=config.seed)
    config = _resolved(config)
    concepts = list(data.ood)
    log(f"skgradunc {__version__} reproduce --protocol uqgan: MNIST 0-4, "
        f"{len(data.X_train)} training images, unknown concepts {concepts}, preset "
        f"{config.preset}, {config.runs} run(s) -> {out}")
    per_run = []
    for run, arrays in enumerate(computed_runs(compute_uqgan_run, config, data, log)):
        per_run.append(uqgan_run_tables(arrays, concepts, list(data.known_unknowns),
                                        random_state=config.seed + run))
    results = aggregate(per_run)
    write_uqgan_report(out, results, _header(config, data, results))
    seconds = time.perf_counter() - start
    write_json(out / "config.json", {**asdict(config), "device": resolve_device(config.device),
                                     "budget": PRESETS[config.preset],
                                     "split_images": _split_images(data),
                                     "ood_images": {c: len(X) for c, X in data.ood.items()},
                                     "seconds": seconds, "version": __version__})
    log(uqgan_summary(results, seconds, out))
    return results
