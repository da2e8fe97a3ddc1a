"""One MetaWorld task instance set up the way the batched env uses it.

MetaWorld's Python builds the task and samples its parameters (reset_model), never steps it: stepping is the
engine's job. Two things change relative to metaworld's own class, through a subclass made per task class:
  * `_reset_hand`, the 50 x frame_skip settling loop of every reset, runs in C++ with the GIL released
    (`_C.sim.settle_mocap`, the same mj_step sequence, so the resulting state is bitwise the same);
  * the compiled model is copied from a per-XML template (`shared_model`) instead of re-parsing the XML for
    every env.
Resets draw from the env's own seeded `np_random` (MetaWorld's `seeded_rand_vec` mode) with a random
parameter vector per reset, as RIPT/QueST use MetaWorld (`_freeze_rand_vec = False`).
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.sawyer_xyz_env import SawyerMocapBase

from ript_fast._core import _C

RandVecOverride = Callable[[], np.ndarray]


@functools.cache
def shared_model(path: str) -> mujoco.MjModel:
    """The compiled model of a MetaWorld XML as MetaWorld's __init__ leaves it (its mocap welds reset, the only
    field __init__ writes; python_tests/test_env_shared_models.py checks that for every task), kept for the process.

    Every MetaWorld env copies it, and the envs of a batch step on views of it (`_C.sim.ModelView`: private
    body_pos/site_pos, all else borrowed), so it is read only: nothing may write to it.
    """
    model = mujoco.MjModel.from_xml_path(path)
    SawyerMocapBase.reset_mocap_welds(types.SimpleNamespace(model=model))  # idempotent: __init__ does it again
    return model


def _initialize_simulation(self: Any) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """gymnasium's MujocoEnv._initialize_simulation, from a copy of the compiled template."""
    model = copy.copy(shared_model(self.fullpath))
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


def reset_on_behalf(
    sampler: Any, view: Any, data: mujoco.MjData, rng: np.random.Generator, rand_vec: RandVecOverride | None = None
) -> None:
    """MetaWorld's reset of one env of a batch, run by `sampler` (a MetaWorld env of the env's task) on that env's
    own state: its data, its model fields (a `_C.sim.ModelView` of the task's shared model) and its random
    stream. The result is the one a MetaWorld env holding that state would reach: its reset starts from the
    previous episode's data and model fields (the first reset_model pass settles from there), draws from its
    `np_random`, and writes only body_pos/site_pos of the model; what else it reads of the sampler's own
    attributes is the same in every env of the task (constants of the task, or values it wrote before reading).
    The episode's values (target, parameters, random vector) are then the sampler's attributes, until its next
    reset, and the view holds the episode's body_pos/site_pos.
    """
    sampler.data = data
    sampler.np_random = rng
    sampler.model.body_pos[:] = view.body_pos
    sampler.model.site_pos[:] = view.site_pos
    reset_task_env(sampler, rand_vec)
    view.body_pos[:] = sampler.model.body_pos
    view.site_pos[:] = sampler.model.site_pos
