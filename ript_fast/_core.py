"""Loads the compiled core `ript_fast._C`.

`mujoco` is imported first so that the exact libmujoco the Python bindings use is already in the process:
the core links that library by soname and must share it (MjModel/MjData pointers cross between the two).
"""

import mujoco  # noqa: F401  (side effect: loads libmujoco.so)

from ript_fast import _C

__all__ = ["_C"]
