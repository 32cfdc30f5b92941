"""UQGAN's MNIST 0-4 benchmark (Oberdiek, Fink & Rottmann 2022) with every detector of
the package beside the authors' published rows."""

from .protocol import run_uqgan_protocol

__all__ = ["run_uqgan_protocol"]
