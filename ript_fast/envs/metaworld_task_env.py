"""One MetaWorld task instance set up the way the batched env uses it.

MetaWorld's Python builds the task and samples its parameters (reset_model), never steps it: stepping is the
engine's job. Two things change relative to metaworld's own class, through a subclass made per task class:
  * `_reset_hand`, the 50 x frame_skip settling loop of every reset, runs in C++ with the GIL released
    (`_C.sim.settle_mocap`, the same mj_step sequence, so the resulting state is bitwise the same);
  * the compiled model is copied from a per-XML template instead of re-parsing the XML for every env.
Resets draw from the env's own seeded `np_random` (MetaWorld's `seeded_rand_vec` mode) with a random
parameter vector per reset, as RIPT/QueST use MetaWorld (`_freeze_rand_vec = False`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from ript_fast._core import _C

RandVecOverride = Callable[[], np.ndarray]


@functools.cache
def _template_model(path: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(path)


def _initialize_simulation(self: Any) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """gymnasium's MujocoEnv._initialize_simulation, from a copy of the compiled template."""
    model = copy.copy(_template_model(self.fullpath))
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
    return model, mujoco.MjData(model)


def _reset_hand(self: Any, steps: int = 50) -> None:
    """SawyerXYZEnv._reset_hand with its simulation loop in C++ (GIL released)."""
    mocap = int(self.model.body_mocapid[self.data.body("mocap").id])
    pos = [float(v) for v in np.asarray(self.hand_init_pos, dtype=np.float64)]
    _C.sim.settle_mocap(
        self.model._address, self.data._address, mocap, pos, [1.0, 0.0, 1.0, 0.0], [-1.0, 1.0], steps, self.frame_skip
    )
    self.init_tcp = self.tcp_center


def _get_state_rand_vec(self: Any) -> np.ndarray:
    """MetaWorld's sampler, unless a context restart supplies the vector (with its noise) instead."""
    if self._rand_vec_override is not None:
        self._last_rand_vec = self._rand_vec_override()
        return self._last_rand_vec
    return self._sampled_rand_vec()


@functools.cache
def _engine_class(task: str) -> type:
    base = ALL_V3_ENVIRONMENTS[task]
    return type(
        f"Engine{base.__name__}",
        (base,),
        {
            "_initialize_simulation": _initialize_simulation,
            "_reset_hand": _reset_hand,
            "_get_state_rand_vec": _get_state_rand_vec,
            "_sampled_rand_vec": base._get_state_rand_vec,
            "_rand_vec_override": None,
        },
    )


def make_task_env(task: str, goal_observable: bool, seed: int | None) -> Any:
    """A MetaWorld env of `task` with its own model and data, ready for seeded random resets."""
    env = _engine_class(task)()
    env._partially_observable = not goal_observable
    del env.sawyer_observation_space  # recomputed for the observability just set (it is a cached_property)
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env._set_task_called = True
    if seed is not None:
        env.seed(seed)
    return env


def reference_env(task: str, seed: int, max_steps: int = 500) -> Any:
    """MetaWorld's own, unmodified env class configured as ours (goal observable, a fresh random episode per
    reset from its seeded stream): the baseline our tests and benchmark compare against."""
    env = ALL_V3_ENVIRONMENTS[task]()
    env._partially_observable = False
    del env.sawyer_observation_space
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env._set_task_called = True
    env.max_path_length = max_steps
    env.seed(seed)
    return env


def reset_task_env(env: Any, rand_vec: RandVecOverride | None = None) -> None:
    """MetaWorld's own reset (both of its reset_model passes), optionally with a given random vector."""
    env._rand_vec_override = rand_vec
    try:
        env.reset()
    finally:
        env._rand_vec_override = None
