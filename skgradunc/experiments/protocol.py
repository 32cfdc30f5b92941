"""The whole protocol: K runs, Tables 1-3, Figure 2, a printed summary."""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from .data import load_experiment_data
from .figures import write_figure2
from .io import write_json
from .report import write_reports
from .runs import compute_run
from .tables import aggregate, run_tables

__all__ = ["ReproduceConfig", "run_protocol"]

# The paper splits EMNIST's 280,000 digits into 60,000 train / 20,000 validation / 200,000 test
PAPER_SPLIT = (60 / 280, 20 / 280, 200 / 280)


@dataclass
class ReproduceConfig:
    data: str = "digits"
    root: str = None
    runs: int = 10
    out: str = "skgradunc-results"
    device: str = "auto"
    seed: int = 0
    split: tuple = PAPER_SPLIT
    epochs: int = None          # None: the data set's default
    lr: float = None
    batch_size: int = 256       # chunk size of the gradient-metric extraction
    ood_size: int = 2000        # images per unknown concept (a random subset of larger sets)


def run_protocol(config, log=print):
    """Run (or resume) the protocol; write tables and the figure under ``config.out``.

    Returns the aggregated results ``{table: {row: {column: {score: {mean, sem, runs}}}}}``.
    """
    if config.runs < 1:
        raise ValueError(f"runs must be at least 1, got {config.runs}")
    if len(config.split) != 3 or min(config.split) <= 0 or sum(config.split) > 1 + 1e-9:
        raise ValueError(f"split must be three positive fractions summing to at most 1, got "
                         f"{config.split}")
    start = time.perf_counter()
    out = Path(config.out)
    data = load_experiment_data(config.data, config.root, ood_size=config.ood_size,
                                seed=config.seed)
    _check_resumable(out, config)
    concepts = list(data.ood)
    log(f"skgradunc {__version__} reproduce: {config.data}, {len(data.X)} in-distribution "
        f"images, unknown concepts {concepts}, {config.runs} runs -> {out}")
    per_run, first, training = [], None, []
    for run in tqdm(range(config.runs), desc="runs", unit="run"):
        arrays = compute_run(config, data, run, log=lambda m: tqdm.write(str(m)))
        first = first or arrays
        per_run.append(run_tables(arrays, concepts, list(data.known_unknowns)))
        training.append({"run": run + 1, "test_accuracy": float(arrays["y_test"].mean()),
                         "lr": float(arrays["lr"]),
                         "diverged_attempts": int(arrays["diverged_attempts"])})
    results = aggregate(per_run)
    split = tuple(round(s, 4) for s in config.split)
    accuracy = [t["test_accuracy"] for t in training]
    recovered = [t["run"] for t in training if t["diverged_attempts"]]
    header = (f"Data: `{config.data}`; {config.runs} runs; split {split}; CNN test accuracy "
              f"{100 * min(accuracy):.2f}-{100 * max(accuracy):.2f} %; unknown concepts: "
              f"{', '.join(concepts)}; known unknowns (Table 3): "
              f"{', '.join(data.known_unknowns)}.")
    if recovered:
        header += (f" Training diverged and was retried with a lower learning rate in run(s) "
                   f"{', '.join(map(str, recovered))} (see config.json).")
    write_reports(out, results, header)
    write_figure2(out / "figure2.png", first, concepts)
    seconds = time.perf_counter() - start
    write_json(out / "config.json", {**asdict(config), "seconds": seconds,
                                     "version": __version__, "training": training})
    log(summary(results, seconds, out))
    return results


# what shapes a run's cached files; the number of runs and the device may change on resume
RUN_SETTINGS = ("data", "root", "seed", "split", "epochs", "lr", "batch_size", "ood_size")


def _check_resumable(out, config):
    """Refuse to mix cached runs made with other settings into the tables."""
    settings = {key: getattr(config, key) for key in RUN_SETTINGS}
    settings["split"] = [float(v) for v in settings["split"]]
    settings["root"] = None if config.root is None else str(Path(config.root).resolve())
    path = out / "runs" / "settings.json"
    if path.exists():
        cached = json.loads(path.read_text())
        changed = {k: (cached.get(k), v) for k, v in settings.items() if cached.get(k) != v}
        if changed:
            differences = ", ".join(f"{key}: {then!r} then, {now!r} now"
                                    for key, (then, now) in changed.items())
            raise ValueError(f"{out} holds runs made with other settings ({differences}); "
                             "choose another --out or delete it to start afresh")
    else:
        write_json(path, settings)


def summary(results, seconds, out):
    lines = [f"done in {seconds:.0f} s; tables and figure in {out}/",
             "AUROC (%)             wrong    All"]
    for table, row in (("Table 1", "Softmax baseline"), ("Table 1", "Entropy"),
                       ("Table 1", "Euclidean norm"), ("Table 2", "LASSO")):
        cells = results[table][row]
        lines.append(f"{row:<20}{100 * cells['wrong']['AUROC']['mean']:>7.2f}"
                     f"{100 * cells['All']['AUROC']['mean']:>7.2f}")
    nn = list(results["Table 3"])[-1]
    cells = results["Table 3"][nn]
    lines.append(f"{nn[:20]:<20}{100 * cells['wrong']['AUROC']['mean']:>7.2f}"
                 f"{100 * cells['All']['AUROC']['mean']:>7.2f}   ({nn})")
    return "\n".join(lines)
