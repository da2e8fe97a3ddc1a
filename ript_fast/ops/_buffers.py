"""The bridge from torch tensors to the core's buffer ABI, and the per-device kernel table.

The core never sees a torch object: a tensor crosses as a `TensorRef` (address, dtype, sizes, strides), a CUDA
call also gets the device index and torch's current stream as integers. This is what lets one build of `_C`
serve any torch >= 2.4.
"""

from __future__ import annotations

from types import ModuleType

import torch

from ript_fast._core import _C

_DTYPES = {
    torch.float32: _C.DType.float32,
    torch.float64: _C.DType.float64,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
    torch.int64: _C.DType.int64,
    torch.int32: _C.DType.int32,
    torch.bool: _C.DType.bool,
}


def ref(t: torch.Tensor) -> _C.TensorRef:
    """A non-owning view of `t` for the core; the caller keeps `t` alive during the call."""
    return _C.TensorRef(t.data_ptr(), _DTYPES[t.dtype], list(t.shape), list(t.stride()))


def maybe_ref(t: torch.Tensor | None) -> _C.TensorRef | None:
    """`ref(t)`, or None for an optional argument that was not given."""
    return None if t is None else ref(t)


def cuda_available() -> bool:
    """True when the core was built with CUDA kernels and a device is visible."""
    return bool(_C.cuda_compiled) and _C.cuda_device_count() > 0 and torch.cuda.is_available()


def launch(name: str, device: torch.device, *refs: _C.TensorRef, **scalars: object) -> None:
    """Runs kernel `name` on the backend of `device` (CPU pool, or CUDA on torch's current stream)."""
    if device.type == "cpu":
        getattr(_C.cpu, name)(*refs, **scalars)
        return
    if device.type == "cuda":
        backend = _cuda_backend()
        index = device.index if device.index is not None else torch.cuda.current_device()
        stream = torch.cuda.current_stream(index).cuda_stream
        getattr(backend, name)(*refs, **scalars, device=index, stream=stream)
        return
    raise NotImplementedError(f"ript_fast ops run on cpu and cuda tensors, not on {device.type}")


def _cuda_backend() -> ModuleType:
    if not _C.cuda_compiled:
        raise RuntimeError(
            "ript_fast was built without CUDA kernels; reinstall on a machine with nvcc "
            "(RIPT_FAST_CUDA=ON pip install .) to use CUDA tensors"
        )
    return _C.cuda
