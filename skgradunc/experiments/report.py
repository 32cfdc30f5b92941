"""Tables as Markdown, CSV and JSON; every file written atomically."""

import csv
import io as _io

from .io import write_json, write_text

__all__ = ["write_reports", "markdown_table"]

CAPTIONS = {
    "Table 1": "Threshold meta classification on single metrics (fitted on the validation set: "
               "direction only).",
    "Table 2": "Linear meta classifiers on all gradient metrics + entropy, trained on the "
               "validation set.",
    "Table 3": "Neural-network meta classifier trained on the validation set plus 200 images "
               "of each known-unknown concept (cumulative).",
}


def _cell(value):
    return f"{100 * value['mean']:.2f} ({100 * value['sem']:.2f})"


def markdown_table(results, table, score):
    rows = results[table]
    columns = list(next(iter(rows.values())))
    lines = [f"| {score} | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row, cells in rows.items():
        lines.append(f"| {row} | " + " | ".join(_cell(cells[c][score]) for c in columns) + " |")
    return "\n".join(lines)


def write_reports(out, results, header):
    """tables.md, tables.csv, tables.json under ``out``."""
    scores = list(next(iter(next(iter(next(iter(results.values())).values())).values())))
    parts = [f"# Reproduction of Oberdiek et al. (2018)\n\n{header}\n",
             "Values in percent: mean over runs (standard error of the mean). Columns: correct "
             "test predictions against wrong ones ('wrong'), against each unknown concept, and "
             "against all of them together ('All').\n"]
    for table in results:
        parts.append(f"## {table}\n\n{CAPTIONS[table]}\n")
        for score in scores:
            parts.append(markdown_table(results, table, score) + "\n")
    write_text(out / "tables.md", "\n".join(parts))
    buffer = _io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", "score", "row", "column", "mean", "sem", "runs"])
    for table, rows in results.items():
        for row, columns in rows.items():
            for column, cells in columns.items():
                for score, value in cells.items():
                    writer.writerow([table, score, row, column, f"{value['mean']:.6f}",
                                     f"{value['sem']:.6f}", value["runs"]])
    write_text(out / "tables.csv", buffer.getvalue())
    write_json(out / "tables.json", results)
