"""One LIBERO task, built once by LIBERO/robosuite, turned into what the engine runs.

LIBERO's Python (BDDL parsing, object placement, robosuite's model assembly: 2-9 s a task) runs once per
task. What the engine needs is read off the built env: the compiled MjModel (shared read-only by every env
of the task), robosuite's OSC_POSE controller settings and the Panda gripper's actuators, the observation's ids and
the goal (goals.py). The robosuite env is then closed; stepping never touches it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from ript_fast._core import _C
from ript_fast.envs.libero.goals import GoalCompiler
from ript_fast.envs.libero.setup import ensure_libero
from ript_fast.envs.libero.suites import LiberoTask, bddl_path, init_states

sim = _C.sim

BUILD_SEED = 0  # LIBERO samples fixture placements while building; a fixed seed makes the scene reproducible


@dataclass
class LiberoTemplate:
    """A task's compiled model (shared by every env of the task) and engine description; `config(model, data)`
    describes one env of it."""

    task: LiberoTask
    instruction: str
    model: mujoco.MjModel
    control: Any  # _C.sim.OscConfig
    initial: Any  # _C.sim.OscState
    gripper_qpos: tuple[int, int]
    eef_body: int
    goal: list[Any]  # _C.sim.GoalTerm
    init_states: np.ndarray  # (50, 1 + nq + nv), the suite's shipped init states for this task

    def config(self, model: mujoco.MjModel, data: mujoco.MjData, max_steps: int, terminate_on_success: bool) -> Any:
        cfg = sim.LiberoEnvConfig()
        cfg.model, cfg.data = model._address, data._address
        cfg.task_id = self.task.task_id
        cfg.control, cfg.initial = self.control, self.initial
        cfg.gripper_qpos = list(self.gripper_qpos)
        cfg.eef_body = self.eef_body
        cfg.goal = self.goal
        cfg.max_steps = int(max_steps)
        cfg.terminate_on_success = bool(terminate_on_success)
        return cfg

    def new_env(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """A fresh MjData on the task's one shared model (~200 MB, mostly textures: never copied per env;
        the engine only reads it)."""
        return self.model, mujoco.MjData(self.model)


@contextlib.contextmanager
def _seeded_numpy(seed: int) -> Iterator[None]:
    """robosuite's placement samplers draw from numpy's global stream: seed it, then put it back."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def build_libero_env(task: LiberoTask, **kwargs: Any) -> Any:
    """LIBERO's own ControlEnv for `task` (no renderer unless asked), built reproducibly and quietly."""
    ensure_libero()
    from libero.libero.envs import OffScreenRenderEnv
    from libero.libero.envs.env_wrapper import ControlEnv

    cls = OffScreenRenderEnv if kwargs.get("has_offscreen_renderer") else ControlEnv
    options = {"has_renderer": False, "has_offscreen_renderer": False, "use_camera_obs": False} | kwargs
    with _seeded_numpy(BUILD_SEED), contextlib.redirect_stdout(io.StringIO()):
        return cls(bddl_file_name=os.fspath(bddl_path(task)), **options)


def _osc_config(problem: Any) -> Any:
    robot = problem.robots[0]
    ctl = robot.controller
    if type(ctl).__name__ != "OperationalSpaceController" or not ctl.use_ori or ctl.impedance_mode != "fixed":
        raise NotImplementedError(f"LIBERO: only robosuite's fixed-impedance OSC_POSE is supported, got {type(ctl)}")
    if ctl.interpolator_pos is not None or ctl.interpolator_ori is not None or ctl.position_limits is not None:
        raise NotImplementedError("LIBERO: OSC interpolators and position limits are not supported")
    gripper = robot.gripper
    if type(gripper).__name__ != "PandaGripper":
        raise NotImplementedError(f"LIBERO: only the Panda gripper is supported, got {type(gripper).__name__}")
    model = problem.sim.model._model
    c = sim.OscConfig()
    c.qpos = [int(v) for v in ctl.qpos_index]
    c.dofs = [int(v) for v in ctl.qvel_index]
    c.actuators = [int(v) for v in robot._ref_joint_actuator_indexes]
    c.gripper_actuators = [int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)) for a in gripper.actuators]
    c.eef_site = int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, ctl.eef_name))
    c.kp, c.kd = [float(v) for v in ctl.kp], [float(v) for v in ctl.kd]
    # robosuite's scale_action, term for term.
    c.input_min, c.input_max = [float(v) for v in ctl.input_min], [float(v) for v in ctl.input_max]
    c.input_mid = [float(v) for v in (ctl.input_max + ctl.input_min) / 2.0]
    c.output_mid = [float(v) for v in (ctl.output_max + ctl.output_min) / 2.0]
    c.action_scale = [float(v) for v in abs(ctl.output_max - ctl.output_min) / abs(ctl.input_max - ctl.input_min)]
    c.initial_joint = [float(v) for v in ctl.initial_joint]
    low, high = robot.torque_limits
    c.torque_low, c.torque_high = [float(v) for v in low], [float(v) for v in high]
    c.gripper_direction = [-1.0, 1.0]  # PandaGripper.format_action
    c.gripper_speed = float(gripper.speed)
    ctrl_range = model.actuator_ctrlrange[list(c.gripper_actuators)]
    c.gripper_bias = [float(v) for v in 0.5 * (ctrl_range[:, 1] + ctrl_range[:, 0])]
    c.gripper_weight = [float(v) for v in 0.5 * (ctrl_range[:, 1] - ctrl_range[:, 0])]
    c.substeps = int(problem.control_timestep / problem.model_timestep)
    c.reset_view = _controller_view(ctl)
    return c


def _controller_view(ctl: Any) -> Any:
    """What robosuite's controller last read of the arm (at the env's reset pose): see OscConfig.reset_view."""
    v = sim.ArmView()
    v.ee_pos = [float(x) for x in ctl.ee_pos]
    v.ee_ori = [float(x) for x in np.asarray(ctl.ee_ori_mat).reshape(9)]
    v.ee_vel = [float(x) for x in np.concatenate([ctl.ee_pos_vel, ctl.ee_ori_vel])]
    v.jac = [float(x) for x in np.asarray(ctl.J_full).reshape(-1)]
    v.mass = [float(x) for x in np.asarray(ctl.mass_matrix).reshape(-1)]
    v.q, v.qdot = [float(x) for x in ctl.joint_pos], [float(x) for x in ctl.joint_vel]
    return v


def compile_task(task: LiberoTask) -> LiberoTemplate:
    """Builds `task` with LIBERO once and reads off everything the engine needs."""
    env = build_libero_env(task)
    try:
        problem = env.env
        robot = problem.robots[0]
        model = problem.sim.model._model
        initial = sim.OscState()
        initial.goal_ori = [float(v) for v in np.asarray(robot.controller.goal_ori).reshape(9)]
        initial.goal_pos = [float(v) for v in robot.controller.goal_pos]
        # PandaGripper starts with a 1-element command that its first update broadcasts to both fingers.
        initial.gripper = [float(v) for v in np.broadcast_to(robot.gripper.current_action, (2,))]
        initial.stale = True  # LIBERO's set_init_state leaves robosuite's controller view at the reset pose
        return LiberoTemplate(
            task=task,
            instruction=task.instruction,
            model=copy.copy(model),
            control=_osc_config(problem),
            initial=initial,
            gripper_qpos=tuple(int(v) for v in robot._ref_gripper_joint_pos_indexes),
            eef_body=int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, robot.robot_model.eef_name)),
            goal=GoalCompiler(problem).compile(),
            init_states=init_states(task),
        )
    finally:
        env.close()
