"""Seeded torch randomness that leaves the caller's random state as it was."""

from contextlib import contextmanager

import torch

__all__ = ["seeded_torch"]


@contextmanager
def seeded_torch(random_state):
    """Torch's global random state (CPU and the current GPU) seeded with ``random_state``
    for the block and restored after it; with None the block draws from it as any torch
    code does."""
    if random_state is None:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(random_state))
        yield
