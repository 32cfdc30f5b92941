"""Files that are either complete or absent: write to a temporary file, then rename."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "write_text", "write_json", "save_arrays", "load_arrays"]


def _umask():
    """The process's umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(path, exc, what=""):
    """``exc`` (an OSError) as the same kind of error naming ``path``: a full disk's
    ``[Errno 28] No space left on device`` names no file."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = f"cannot write {path}: {what}{reason}"
    try:
        error = type(exc)(message)
    except Exception:   # an OSError subclass that wants other arguments
        error = OSError(message)
    error.errno = exc.errno
    return error


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary gets the mode a plainly created file would have (0666 less the
    umask), not mkstemp's private 0600, so results are as readable as any other file.
    An OSError (a full disk, a folder that cannot be created) is raised as the same
    kind of error saying ``cannot write <path>: <reason>``; the temporary is removed,
    so ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc, "cannot create its folder: ") from exc
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=path.suffix)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    os.close(handle)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        yield Path(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_arrays(path, **arrays):
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
