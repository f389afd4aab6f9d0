"""Where a network runs: backends implementing the interface of :class:`~bdh_graph.kernels.backend.Backend`.

``numpy`` runs the plain reference twins (``reference.py``); ``numba`` the event-driven compiled kernels
(``numba_kernels.py``, the default); ``torch`` torch sparse/gather-scatter kernels on ``device="cpu"`` or
``"cuda"`` (``torch_backend.py``). A backend is chosen per network (``build_network(..., backend=...,
device=...)``) or for the session with :func:`set_backend`; a new backend is one module plus one line in
``BACKENDS``. A backend or device this machine cannot run is refused with what to install.
"""
from __future__ import annotations

import importlib

from .backend import Backend, Graph
from .torch_backend import check_device

# name -> "module:class", imported on first use (Numba's import and compilation cost nothing until then).
BACKENDS = {
    "numpy": "bdh_graph.kernels.reference:NumpyBackend",
    "numba": "bdh_graph.kernels.numba_kernels:NumbaBackend",
    "torch": "bdh_graph.kernels.torch_backend:TorchBackend",
}
_default = ("numba", "cpu")  # backend name, device
_instances: dict[tuple[str, str], Backend] = {}


def available_backends() -> list[str]:
    return list(BACKENDS)


def get_backend(backend: str | Backend | None = None, device: str | None = None) -> Backend:
    """The backend named ``backend`` on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:<index>"``; only ``torch``
    runs on CUDA). An instance passes through; None: the backend and device set by :func:`set_backend` (whose
    device is also the default for that backend named explicitly), else ``"cpu"``; None on a CUDA device: torch,
    so that a device alone (``validate(..., device="cuda")``, ``--device cuda``) reaches the network."""
    if isinstance(backend, Backend):
        if device is not None and str(check_device(device)) != str(backend.device):
            raise ValueError(f"backend {backend.name!r} runs on {str(backend.device)!r}, not on device {device!r}")
        return backend
    name = _default[0] if backend is None else backend
    if backend is None and device is not None and check_device(device).type != "cpu":
        name = "torch"  # the one backend that runs on CUDA
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not known; expected one of {available_backends()}")
    if device is None:
        device = _default[1] if name == _default[0] else "cpu"
    key = (name, str(check_device(device)))
    if key not in _instances:
        module, cls = BACKENDS[name].split(":")
        try:
            module = importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"backend {name!r} is not available: {err}; install it with "
                             f"`pip install {err.name or name}`") from err
        _instances[key] = getattr(module, cls)(key[1])
    return _instances[key]


def set_backend(name: str, device: str | None = None) -> None:
    """Make ``name`` on ``device`` (default ``"cpu"``) the backend of networks built without an explicit one."""
    global _default
    _default = (name, str(get_backend(name, device or "cpu").device))


__all__ = ["Backend", "Graph", "available_backends", "check_device", "get_backend", "set_backend"]
