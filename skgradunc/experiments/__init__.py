"""The experiments: the paper's protocol (Oberdiek et al. 2018, sections 3-5;
:mod:`.paper`) and UQGAN's MNIST 0-4 benchmark (:mod:`.uqgan`), with their shared
settings (:mod:`.config`), cache, tables and parallel runs.

``skgradunc reproduce`` runs them from the command line; :func:`run_protocol` from Python.
"""

from .config import ReproduceConfig, check_config
from .protocol import run_protocol

__all__ = ["ReproduceConfig", "check_config", "run_protocol"]
