"""UQGAN's MNIST 0-4 table as Markdown (ours beside the published rows), CSV and JSON."""

from ..io import write_text
from ..markdown import PER_MILLE, markdown_table, percent_cell, write_machine_readable
from .tables import (COST_TABLE, ID_SCORES, MAIN_TABLE, OOD_SCORES, OOD_TABLE, PUBLISHED,
                     PUBLISHED_COLUMNS, TIME_TABLE)

__all__ = ["write_uqgan_report", "main_table", "uqgan_summary"]

INTRODUCTION = (
    "Values in percent: mean over runs (standard error of the mean; none for one run). In "
    "distribution: the test images of MNIST digits 0-4; Accuracy of the method's network; S/F "
    "AUROC: its confidence for correct against wrong test predictions (UQGAN and one-vs-all: 1 - "
    "the aleatoric uncertainty); AURC and AUGRC (per mille, lower is better): the same "
    "confidence as a selective classifier, the areas under its risk-coverage and generalized "
    "risk-coverage curves (Geifman & El-Yaniv 2017; Traub et al. 2024); ECE (15 bins) of "
    "its maximum class probability, or of a meta "
    "classifier's P(correct). Out of distribution ('All' unknown concepts pooled): every "
    "in-distribution test image against the unknowns' images, by the method's score (UQGAN and "
    "one-vs-all: P(in distribution), 1 - the epistemic uncertainty); AUPR-In takes the "
    "in-distribution images as positives, AUPR-Out the unknowns; FPR at 95 % TPR of the "
    "in-distribution images (lower is better). Rows marked '(paper)' are the authors' published "
    "MNIST 0-4 figures, with Fashion-MNIST and SVHN among their unknowns and no noise or "
    "notMNIST. Not in the paper: the maximum softmax after temperature scaling (one "
    "temperature fitted on the validation images by scikit-learn's CalibratedClassifierCV, "
    "method 'temperature'; the ECE before and after); ExGrad (the expected gradient's L2 "
    "norm), Energy "
    "(log-sum-exp of the logits) and the maximum logit, fitted on nothing; the Mahalanobis "
    "and kNN detectors on the standardised gradient metrics, fitted on the softmax "
    "network's training images alone; NAC-UE (neuron activation coverage of the penultimate "
    "features, fitted on 1,000 class-balanced training images) and GAIA-A / GAIA-Z "
    "(gradient abnormality of the convolutions' outputs), on activation gradients (issue "
    "27). Cost: seconds per 1,000 images of the outputs a row reads (gradient metrics, "
    "GradNorm, ExGrad, NAC-UE, GAIA, the softmax or logits), measured in the run on its "
    "threads; the meta classifiers and Mahalanobis / kNN add their own prediction, "
    "negligible beside the gradient metrics; one-vs-all and UQGAN are not timed.")
CAPTIONS = {
    OOD_TABLE: "Each unknown concept against the in-distribution test images. The known "
               "unknowns (up to 200 images each, seen by the meta classifiers '+ known unknowns') "
               "are scored on their other images, for every method.",
    TIME_TABLE: "Seconds to train each network and compute its outputs (the softmax "
                "network's include its gradient metrics and GradNorm scores).",
}


def main_table(results):
    """Methods as rows, the authors' seven columns and the selective scores; a '(paper)'
    row under each method the authors published."""
    columns = [("test", s) for s in ID_SCORES] + [("All", s) for s in OOD_SCORES]
    titles = [f"{s} (‰)" if s in PER_MILLE else s for _, s in columns]
    lines = ["| method | " + " | ".join(titles) + " | s / 1000 images |",
             "|---|" + "---|" * (len(columns) + 1)]
    costs = results.get(COST_TABLE, {})
    for row, cells in results[MAIN_TABLE].items():
        cost = costs.get(row, {}).get("cost", {}).get("s / 1000 images")
        lines.append(f"| {row} | " + " | ".join(
            percent_cell(cells[c][s], s) if s in cells[c] else "-" for c, s in columns)
            + f" | {_seconds(cost)} |")
        if row in PUBLISHED:
            published = dict(zip(PUBLISHED_COLUMNS, PUBLISHED[row]))
            lines.append(f"| {row} (paper) | " + " | ".join(
                f"{published[s]:.2f}" if s in published else "-" for _, s in columns)
                + " | - |")
    return "\n".join(lines)


def _seconds(cell):
    if cell is None:
        return "-"
    return f"{cell['mean']:.2f}" + (f" ({cell['sem']:.2f})" if cell["runs"] > 1 else "")


def _time_table(results):
    lines = ["| network | seconds |", "|---|---|"]
    for row, cells in results[TIME_TABLE].items():
        value = cells["seconds"]["seconds"]
        lines.append(f"| {row} | {value['mean']:.0f} ({value['sem']:.0f}) |")
    return "\n".join(lines)


def write_uqgan_report(out, results, header):
    """tables.md, tables.csv, tables.json under ``out``."""
    parts = ["# UQGAN's MNIST 0-4 benchmark (Oberdiek, Fink & Rottmann 2022), every "
             f"detector of skgradunc side by side\n\n{header}\n", INTRODUCTION + "\n",
             f"## {MAIN_TABLE}\n", main_table(results) + "\n",
             f"## {OOD_TABLE}\n\n{CAPTIONS[OOD_TABLE]}\n"]
    parts += [markdown_table(results, OOD_TABLE, score) + "\n" for score in OOD_SCORES]
    parts += [f"## {TIME_TABLE}\n\n{CAPTIONS[TIME_TABLE]}\n", _time_table(results) + "\n"]
    write_text(out / "tables.md", "\n".join(parts))
    write_machine_readable(out, results)


def uqgan_summary(results, seconds, out):
    """The printed digest: accuracy, S/F AUROC, OoD AUROC and FPR@95 per method, the
    paper's in brackets."""
    width = max(44, *(len(row) + 2 for row in results[MAIN_TABLE]))
    lines = [f"done in {seconds:.0f} s; tables in {out}/",
             f"{'(%)':<{width}}{'Acc':>7}{'S/F':>7}{'OoD':>7}{'FPR95':>7}"]
    for row, cells in results[MAIN_TABLE].items():
        values = [cells["test"]["Accuracy"], cells["test"]["S/F AUROC"],
                  cells["All"]["AUROC"], cells["All"]["FPR@95%TPR"]]
        lines.append(f"{row:<{width}}" + "".join(f"{100 * v['mean']:>7.2f}" for v in values))
        if row in PUBLISHED:
            paper = PUBLISHED[row]
            lines.append(f"{'  paper':<{width}}" + "".join(
                f"{paper[PUBLISHED_COLUMNS.index(c)]:>7.2f}"
                for c in ("Accuracy", "S/F AUROC", "AUROC", "FPR@95%TPR")))
    return "\n".join(lines)
