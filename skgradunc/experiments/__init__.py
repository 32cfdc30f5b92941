"""The paper's experimental protocol (Oberdiek et al. 2018, sections 3-5).

``skgradunc reproduce`` runs it from the command line; :func:`run_protocol` from Python.
"""

from .protocol import ReproduceConfig, check_config, run_protocol

__all__ = ["ReproduceConfig", "check_config", "run_protocol"]
