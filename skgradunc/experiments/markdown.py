"""Tables as Markdown, CSV and JSON; every file written atomically."""

import csv
import io as _io

from .io import write_json, write_text

__all__ = ["percent_cell", "markdown_table", "write_machine_readable"]


def percent_cell(value):
    """"mean (standard error)" in percent; the mean alone for one run, which has no error."""
    if value["runs"] == 1:
        return f"{100 * value['mean']:.2f}"
    return f"{100 * value['mean']:.2f} ({100 * value['sem']:.2f})"


def markdown_table(results, table, score):
    rows = results[table]
    columns = list(next(iter(rows.values())))
    lines = [f"| {score} | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row, cells in rows.items():
        lines.append(f"| {row} | "
                     + " | ".join(percent_cell(cells[c][score]) for c in columns) + " |")
    return "\n".join(lines)


def write_machine_readable(out, results):
    """tables.csv (one line per cell) and tables.json under ``out``."""
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
