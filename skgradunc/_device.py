"""``device="auto"``: CUDA when there is one, else the CPU."""

import torch

__all__ = ["resolve_device", "check_device", "AutoDeviceMixin"]


def resolve_device(device):
    """Return a concrete torch device string for ``device``.

    ``"auto"`` (or ``None``) means ``"cuda"`` when a GPU is visible, else
    ``"cpu"``; anything else is passed through after torch has parsed it, so a
    typo fails here with torch's message rather than deep inside training.
    """
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(torch.device(device))


def check_device(device):
    """``device`` resolved (:func:`resolve_device`), or a ValueError when torch does not
    know it or it asks for CUDA where there is none."""
    try:
        resolved = resolve_device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N "
                         f"({exc})") from exc
    if resolved.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use cpu "
                         "(or auto)")
    return resolved


class AutoDeviceMixin:
    """Let a skorch net keep ``device="auto"`` as its parameter.

    skorch reads ``self.device`` in many places and needs a real device there,
    while scikit-learn's ``get_params``/``clone`` and pickling must see the
    value the user gave. The raw value lives in ``__dict__["device"]`` (so
    skorch still lists it as a parameter); attribute access resolves it.
    """

    @property
    def device(self):
        return resolve_device(self.__dict__.get("device", "auto"))

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params["device"] = self.__dict__.get("device", "auto")
        return params

    def __getstate__(self):
        state = super().__getstate__()
        # skorch's __setstate__ maps tensors with state["device"]: give it a real one
        state["device"] = self.device
        state["_requested_device_"] = self.__dict__.get("device", "auto")
        return state

    def __setstate__(self, state):
        requested = state.pop("_requested_device_", state["device"])
        super().__setstate__(state)
        self.__dict__["device"] = requested
