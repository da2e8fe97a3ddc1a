"""Loads the compiled core `ript_fast._C`.

`mujoco` is imported first so that the exact libmujoco the Python bindings use is already in the process:
the core links that library by soname and must share it (MjModel/MjData pointers cross between the two).

A source tree that was never built (or a checkout that shadows the installed package, e.g. `python -m pytest` from
the repository root) has no `_C`: that is said in one line with the command that builds it, instead of Python's
`cannot import name '_C'`. A `_C` that exists but fails to load keeps its own error, which says why.
"""

import importlib.util
from pathlib import Path

import mujoco  # noqa: F401  (side effect: loads libmujoco.so)

try:
    from ript_fast import _C
except ImportError:
    if importlib.util.find_spec("ript_fast._C") is not None:
        raise
    raise ImportError(
        f"ript_fast's compiled core (ript_fast._C) is not built in {Path(__file__).parent}: install the package, "
        "which compiles it: `pip install .` from the repository root (`pip install -e .` to keep editing the "
        "source), then run from outside that folder or with `pytest` (not `python -m pytest`)"
    ) from None

__all__ = ["_C"]
