"""The paper's tables as Markdown, CSV and JSON, with their captions."""

from ..io import write_text
from ..markdown import markdown_table, write_machine_readable
from .tables import CALIBRATION_TABLE, COEFFICIENT_TABLE, COST_TABLE, IN_DISTRIBUTION_TABLE

__all__ = ["write_reports", "coefficient_table"]

CAPTIONS = {
    "Table 1": "Threshold meta classification on single metrics (fitted on the validation set: "
               "direction only). The last three rows are not in the paper: the network's "
               "gradient norms at the all-ones and uniform targets, and GradNorm's own score "
               "(Huang et al. 2021: the L1 norm of the last layer weight's gradient at the "
               "uniform target, T = 1).",
    "Table 2": "Linear meta classifiers on all gradient metrics + entropy, trained on the "
               "validation set.",
    "Table 3": "Neural-network meta classifier (gradient metrics + entropy) and Lee & AlRegib "
               "(2020)'s detector (squared L2 norms of the all-ones gradient per parameter "
               "tensor, same two-layer network), each trained on the validation set plus 200 "
               "images of each known-unknown concept (cumulative). The Lee & AlRegib rows are "
               "not in the paper.",
    CALIBRATION_TABLE: "Not in the paper: expected calibration error (15 equal-width bins, "
                       "lower is better) of every probability of 'correct' - the softmax "
                       "maximum, before and after temperature scaling (one temperature "
                       "fitted on the validation images by scikit-learn's "
                       "CalibratedClassifierCV, method 'temperature'), and each meta "
                       "classifier's P(correct) - on the test set, and "
                       "on the test set plus every unknown concept's evaluation images (all "
                       "of them wrong). reliability.png draws the test set's reliability "
                       "diagram, pooled over runs.",
    IN_DISTRIBUTION_TABLE: "Not in the paper (issue 27): detectors that need no labelled "
                           "error, fitted on nothing (the softmax baseline, ExGrad, Energy, "
                           "the maximum logit) or on the network's training images alone "
                           "(Mahalanobis and kNN on the standardised gradient metrics; NAC-UE "
                           "on 1,000 class-balanced training images of conv3, with the "
                           "authors' alpha = 100 and with alpha='auto'; GAIA-A and GAIA-Z on "
                           "the convolutions). Scored as the tables above, on correct test "
                           "predictions against wrong ones and the unknowns.",
    COST_TABLE: "Seconds per 1,000 images of the outputs each row of the previous table "
                "reads (gradient metrics, ExGrad, NAC-UE, GAIA, the logits), measured in the "
                "run on its threads; Mahalanobis and kNN add their own scoring.",
    COEFFICIENT_TABLE: "Not in the paper: the LASSO meta classifier's coefficients (Table 2; "
                       "log-odds of 'correct' per standard deviation of the feature), mean "
                       "over runs, and in brackets the share of runs in which the LASSO kept "
                       "the feature (non-zero). lasso_coefficients.png draws them.",
}


def coefficient_table(results):
    """Layers as rows, statistics as columns: "mean coefficient (share selected)"."""
    rows = results[COEFFICIENT_TABLE]
    columns = list(dict.fromkeys(c for cells in rows.values() for c in cells))
    lines = ["| layer | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row, cells in rows.items():
        lines.append(f"| {row} | " + " | ".join(
            f"{cells[c]['coefficient']['mean']:+.3f} ({cells[c]['selected']['mean']:.0%})"
            if c in cells else "" for c in columns) + " |")
    return "\n".join(lines)


def _scores_of(rows):
    return list(next(iter(next(iter(rows.values())).values())))


def write_reports(out, results, header):
    """tables.md, tables.csv, tables.json under ``out``."""
    parts = [f"# Reproduction of Oberdiek et al. (2018)\n\n{header}\n",
             "Values in percent: mean over runs (standard error of the mean; none for one run). "
             "Columns: correct test predictions against wrong ones ('wrong'), against each "
             "unknown concept, and against all of them together ('All'). AURC and AUGRC (per "
             "mille, lower is better): the test predictions' confidence as a selective "
             "classifier, the areas under its risk-coverage and generalized risk-coverage "
             "curves (Geifman & El-Yaniv 2017; Traub et al. 2024).\n"]
    for table, rows in results.items():
        parts.append(f"## {table}\n\n{CAPTIONS[table]}\n")
        if table == COEFFICIENT_TABLE:
            parts.append(coefficient_table(results) + "\n")
            continue
        for score in _scores_of(rows):
            parts.append(markdown_table(results, table, score) + "\n")
    write_text(out / "tables.md", "\n".join(parts))
    write_machine_readable(out, results)
