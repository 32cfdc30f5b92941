"""Files that are either complete or absent: write to a temporary file, then rename."""

import json
import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "write_text", "write_json", "save_pickle", "load_pickle",
           "save_arrays", "load_arrays"]


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_pickle(path, obj):
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        pickle.dump(obj, handle)


def load_pickle(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)  # only files this package wrote in --out


def save_arrays(path, **arrays):
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
