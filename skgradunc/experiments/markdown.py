"""Tables as Markdown, CSV and JSON; every file written atomically."""

import csv
import io as _io

from .io import write_json, write_text

__all__ = ["PER_MILLE", "percent_cell", "markdown_table", "write_machine_readable"]

# areas under risk-coverage curves: a 99 % accurate network's are a few thousandths
PER_MILLE = ("AURC", "AUGRC")


def percent_cell(value, score=None):
    """"mean (standard error)" in percent (per mille with three decimals for the scores in
    :data:`PER_MILLE`); the mean alone for one run, which has no error."""
    scale, digits = (1000, 3) if score in PER_MILLE else (100, 2)
    if value["runs"] == 1:
        return f"{scale * value['mean']:.{digits}f}"
    return f"{scale * value['mean']:.{digits}f} ({scale * value['sem']:.{digits}f})"


def markdown_table(results, table, score):
    """Rows by columns of one score; the columns that score has in no row are left out."""
    rows = results[table]
    columns = [c for c in next(iter(rows.values()))
               if any(score in cells.get(c, {}) for cells in rows.values())]
    title = f"{score} (‰)" if score in PER_MILLE else score
    lines = [f"| {title} | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row, cells in rows.items():
        lines.append(f"| {row} | " + " | ".join(
            percent_cell(cells[c][score], score) if score in cells.get(c, {}) else "-"
            for c in columns) + " |")
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
