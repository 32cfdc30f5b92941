"""Exact per-sample gradients on a GPU: the process-wide torch settings they need.

* Full float32. PyTorch runs cuDNN convolutions in TF32 by default (a 10-bit mantissa,
  ~1e-3 relative per product). Measured on an H100 against the float64 reference: the
  paper CNN's features stay exact either way (6e-7), ResNet-18's differ by up to 15 %
  in TF32 against 6e-6 in float32 (tests/test_cuda.py). Float32 is held while the engine
  computes, for matrix products too (``torch.set_float32_matmul_precision("high")``).
* cuDNN off for networks with recurrent layers: cuDNN's RNN backward refuses eval mode
  ("cudnn RNN backward can only be called in training mode"), PyTorch's own does not.

The settings are process-wide, not per thread: the first holder changes one, the last
gives back what it found, so overlapping transforms (threads, dask) leave the user's
setting as it was.
"""

import threading
from contextlib import ExitStack, contextmanager

import torch

__all__ = ["gpu_numerics"]


class _SharedSetting:
    """A process-wide setting changed while anyone holds it, restored by the last."""

    def __init__(self, read, write, value):
        self._read, self._write, self._value = read, write, value
        self._lock, self._holders, self._saved = threading.Lock(), 0, None

    @contextmanager
    def held(self):
        with self._lock:
            if self._holders == 0:
                self._saved = self._read()
                self._write(self._value)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._write(self._saved)


def _tf32_flags():
    """(read, write) of cuDNN convolutions' and CUDA matrix products' float32 precision:
    torch >= 2.9's fp32_precision (reading the legacy allow_tf32 flags raises once a user
    has set the new ones), else the legacy flags."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        cudnn_conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul

        def write(values):
            cudnn_conv.fp32_precision, matmul.fp32_precision = values
        return (lambda: (cudnn_conv.fp32_precision, matmul.fp32_precision)), write, (
            "ieee", "ieee")

    def write_legacy(values):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = values
    return (lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32),
            write_legacy, (False, False))


def _cudnn_enabled(value):
    torch.backends.cudnn.enabled = value


_FULL_FLOAT32 = _SharedSetting(*_tf32_flags())
_NO_CUDNN = _SharedSetting(lambda: torch.backends.cudnn.enabled, _cudnn_enabled, False)


@contextmanager
def gpu_numerics(device, module):
    """The settings exact per-sample gradients of ``module`` need on ``device`` (none on
    the CPU), held for the block."""
    with ExitStack() as stack:
        if torch.device(device).type == "cuda":
            stack.enter_context(_FULL_FLOAT32.held())
            if any(isinstance(m, torch.nn.RNNBase) for m in module.modules()):
                stack.enter_context(_NO_CUDNN.held())
        yield
