"""The documentation site's API reference covers the public API: every public name has its
autosummary entry in docs/api.rst (so a page), and every public class and function shows an
example. (The site itself is built, warnings as errors, by .ci/run.)"""

import importlib
import inspect
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
PUBLIC_MODULES = ["skgradunc", "skgradunc.datasets", "skgradunc.metrics", "skgradunc.conformal",
                  "skgradunc.detectors",
                  "skgradunc.layer_rules", "skgradunc.experiments", "skgradunc.cluster"]


def documented_names():
    """Full names of the autosummary entries of docs/api.rst."""
    names, module = set(), None
    for line in API.read_text().splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        entry = re.match(r" {3}([A-Za-z_][\w.]*)$", line)
        if entry and module:
            names.add(f"{module}.{entry.group(1)}")
    return names


def public_objects():
    """(full name, object) of every public class, function and constant; submodules and
    ``__version__`` are not pages of their own."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.ismodule(obj) and name != "__version__":
                yield f"{module_name}.{name}", obj


@pytest.mark.parametrize("name", [name for name, _ in public_objects()])
def test_every_public_name_has_an_api_page(name):
    assert name in documented_names(), f"{name} is public but has no entry in docs/api.rst"


def test_the_api_reference_names_only_what_exists():
    for name in documented_names():
        module, _, attribute = name.rpartition(".")
        parts = name.split(".")
        obj = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], start=2):
            if not hasattr(obj, part):   # a submodule not imported yet (skgradunc.training)
                try:
                    importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    pass
            obj = getattr(obj, part)     # AttributeError: a page for a name that is gone
        assert obj is not None, attribute


def _shows_usage(obj):
    """Classes and functions; an exception class has no usage of its own to show."""
    if inspect.isclass(obj):
        return not issubclass(obj, Exception)
    return inspect.isfunction(obj)


@pytest.mark.parametrize("name,obj", [(n, o) for n, o in public_objects() if _shows_usage(o)])
def test_every_public_class_and_function_shows_an_example(name, obj):
    assert re.search(r"\n\s*Examples\n\s*--------\n", obj.__doc__ or ""), name


def test_the_landing_pages_quick_start_runs_and_its_meta_classifier_ranks(capsys):
    """docs/index.md's quick start as it stands: the printed AUROC of P(correct) for the
    network's correct predictions on new digits is far above chance."""
    page = (API.parent / "index.md").read_text()
    block = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    exec(compile(block, "docs/index.md", "exec"), {"__name__": "quick_start"})
    auroc = float(capsys.readouterr().out.split()[-1])
    assert 0.75 < auroc <= 1.0


def test_every_api_name_the_landing_page_links_has_its_page():
    """docs/index.md names the API through roles ({py:class}`~skgradunc.X`), each of which
    must resolve to an autosummary page of docs/api.rst (the build would leave an
    unresolved one as plain text, without a warning)."""
    page = (API.parent / "index.md").read_text()
    linked = re.findall(r"\{py:\w+\}`~?([\w.]+)`", page)
    assert len(linked) >= 30
    missing = sorted(set(linked) - documented_names())
    assert not missing, f"linked from docs/index.md without an API page: {missing}"
