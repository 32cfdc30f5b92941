"""Reading ahead: blocks made in a background thread while the caller computes, their
errors marked as the input's and raised in the caller's thread."""

import queue
import threading

__all__ = ["marked", "read_in_background", "from_input"]


def from_input(exc):
    """True for an error raised while reading or validating X (not by the network)."""
    return getattr(exc, "_skgradunc_input", False)


def marked(blocks):
    """The blocks, errors marked as the input's (:func:`from_input`)."""
    try:
        yield from blocks
    except Exception as exc:
        try:
            exc._skgradunc_input = True
        except AttributeError:   # an exception type without __dict__
            pass
        raise


_END = object()


def read_in_background(blocks, depth=2):
    """Iterate ``blocks`` in a background thread, up to ``depth`` blocks ahead. The
    reader's errors are raised here, in the caller's thread; when the caller stops early
    (an error, Ctrl-C) the reader stops after its current block."""
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def put(entry):
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for block in blocks:
                if not put((block, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put((None, exc))
        finally:
            blocks.close()

    reader = threading.Thread(target=read, name="skgradunc-reader", daemon=True)
    reader.start()
    finished = False
    try:
        while True:
            block, error = ready.get()
            if error is not None:
                raise error
            if block is _END:
                finished = True
                return
            yield block
    finally:
        stop.set()
        # stopped early (an error, Ctrl-C): the reader ends after the read it is in,
        # which is not waited for long (a stalled file system must not hold Ctrl-C)
        reader.join(None if finished else 2.0)
