"""The paper's protocol (Oberdiek et al. 2018, sections 3-5): K re-splits, one CNN each,
Tables 1-3, calibration, the LASSO's coefficients and Figure 2."""

from .protocol import run_paper_protocol

__all__ = ["run_paper_protocol"]
