"""README's promises are executed, so they cannot rot."""

import os
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


NUMBER = r"-?\d+(?:\.\d+)?"
# a stated figure, with its spread across CPUs and thread counts where README gives one
STATED = rf"({NUMBER})(?:\s*±\s*(\d+(?:\.\d+)?))?"


def printed_comments(block):
    """The comment closing each print(...) statement of a block, in order ('' if none)."""
    comments, depth, inside = [], 0, False
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        inside = inside or code.lstrip().startswith("print(")
        depth += code.count("(") - code.count(")")
        if inside and depth == 0:
            comments.append(comment.strip())
            inside = False
    return comments


def _tolerance(value, spread):
    """README's ± where it gives one; else half a unit of the last digit printed (the
    figure came out the same on every CPU and thread count measured)."""
    if spread:
        return float(spread)
    decimals = len(value.partition(".")[2])
    return 0.5 * 10.0 ** -decimals + 1e-12


def test_readme_python_examples_run(capsys, monkeypatch):
    # README's figures were printed on a CPU: device="auto" takes the CPU here too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # README's figures hold for 1 and 2 threads; SKGRADUNC_README_THREADS checks either
    threads = os.environ.get("SKGRADUNC_README_THREADS")
    if threads:
        saved = torch.get_num_threads()
        torch.set_num_threads(int(threads))
    try:
        _run_readme(capsys)
    finally:
        if threads:
            torch.set_num_threads(saved)


def _run_readme(capsys):
    blocks = code_blocks("python")
    assert blocks, "README has no python example"
    namespace = {"__name__": "readme"}  # later blocks use what earlier ones built
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    # every number README says a print shows is what it prints today, within the spread
    # README states for it (training and solvers round differently on other CPUs)
    lines = out.splitlines()
    comments = [c for block in blocks for c in printed_comments(block)]
    assert len(lines) == len(comments), (lines, comments)
    for line, comment in zip(lines, comments):
        stated = re.findall(STATED, comment)
        shown = [float(v) for v in re.findall(NUMBER, line)][-len(stated):] if stated else []
        assert len(shown) == len(stated), f"{line!r} vs # {comment}"
        for value, (figure, spread) in zip(shown, stated):
            assert abs(value - float(figure)) <= _tolerance(figure, spread), \
                f"{line!r} vs # {comment}"
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.95  # the README states 0.960 for this seed and split
    assert "(450, 42) ['conv1__l1', 'conv1__l2', 'conv1__min']" in out
    auroc = float(re.search(r"correct vs wrong: ([0-9.]+)", out).group(1))
    assert auroc > 0.8
    meta = re.search(r"cross-validated AUROC ([0-9.]+); digits vs unseen noise AUROC ([0-9.]+)",
                     out)
    assert float(meta.group(1)) > 0.85 and float(meta.group(2)) > 0.95


def test_ci_runs_exactly_readmes_test_command():
    bash_blocks = [b.strip() for b in code_blocks("bash")]
    install_and_test = [b for b in bash_blocks if "pytest" in b]
    assert len(install_and_test) == 1
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test[0] in ci_script


def test_ci_builds_the_docs_with_readmes_command():
    docs = [b.strip() for b in code_blocks("bash") if "sphinx-build" in b]
    assert docs == ['pip install ".[docs]" && sphinx-build -W -b html docs docs/_build/html']
    assert docs[0] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_has_the_main_job_command():
    assert "pip install . && skgradunc" in [b.strip() for b in code_blocks("bash")]
