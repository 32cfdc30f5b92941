"""Run every docstring example of the *installed* package (pytest's --doctest-modules
would import a second copy from the source tree after a non-editable install)."""

import doctest
import importlib
import pkgutil

import pytest

import skgradunc

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(skgradunc.__path__, "skgradunc.")
                 if not name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_classes_have_examples():
    for name in skgradunc.__all__:
        obj = getattr(skgradunc, name)
        if isinstance(obj, type) and not issubclass(obj, Exception):
            assert "Examples\n    --------" in obj.__doc__, name
