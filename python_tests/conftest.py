"""Shared pytest fixtures and markers."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ript_fast.ops._buffers import cuda_available

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# The installed console script, for tests that start runs in subprocesses: `python -m ript_fast.cli` would put
# the working directory (the source checkout, whose ript_fast has no compiled _C) ahead of the installed package.
RIPT_FAST = shutil.which("ript-fast", path=str(Path(sys.executable).parent)) or "ript-fast"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CUDA tests skip cleanly on machines without a device (or a core built without CUDA)."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (or ript_fast built without CUDA kernels)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic_seed() -> None:
    torch.manual_seed(0)


# Image tests skip with a reason starting with this where no OpenGL context can be made (test_env_rgb.py,
# test_rollout.py, libero_helpers.py). Under CI (CI=true, as .ci/run sets it) such a skip is a failure: CI installs
# EGL, so a missing backend means the image tests would silently not run.
GL_SKIP_REASON = "no OpenGL backend"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@functools.cache
def gl_error() -> str | None:
    """Why no offscreen GL context can be made here (the exception, named), or None when one can."""
    try:
        from ript_fast.envs.rendering import check_gl

        check_gl()
        return None
    except Exception as err:  # any failure to make a context: missing library, no device, bad MUJOCO_GL
        return f"{type(err).__name__}: {err}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI, a test skipped for want of an OpenGL backend fails instead, saying why GL is missing."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci() and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if GL_SKIP_REASON in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true: this image test may not skip ({reason}); GL error: {gl_error()}"


@pytest.fixture(scope="module")
def init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight smoke QueST policy saved as a checkpoint: `train --init` without demos or SFT."""
    from python_tests.ppo_fixtures import smoke_policy
    from ript_fast.train.checkpoint import save_policy

    path = tmp_path_factory.mktemp("init") / "init.safetensors"
    save_policy(smoke_policy(), path)
    return path


@pytest.fixture(scope="session")
def oft_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight OpenVLA-OFT checkpoint folder in the official layout (what the hub's would hold)."""
    from ript_fast.policies.openvla_oft.random_folder import write_random_folder

    return write_random_folder(tmp_path_factory.mktemp("oft") / "openvla-7b-oft-finetuned-libero-goal")


@pytest.fixture(scope="session")
def openvla_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight OpenVLA checkpoint folder in the official layout (a LIBERO fine-tune's: with
    dataset_statistics.json under libero_goal)."""
    from ript_fast.policies.openvla.random_folder import write_random_openvla_folder

    return write_random_openvla_folder(tmp_path_factory.mktemp("openvla") / "openvla-7b-finetuned-libero-goal")


@pytest.fixture(scope="session")
def reach_contexts() -> np.ndarray:
    """Two real reach-v3 contexts (env.get_state() rows), as collect_demos stores them in `states`."""
    from ript_fast.envs import make_vec_env

    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=0, autoreset=False)
    try:
        env.reset(seed=0)
        return env.get_state()
    finally:
        env.close()


@pytest.fixture(scope="module")
def smooth_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reach-v3 demo file of three smooth, state-dependent trajectories: learnable by SFT in a few dozen steps."""
    from ript_fast.data import Episode, write_demo_file

    rng = np.random.default_rng(0)
    episodes = []
    for i in range(3):
        t = np.linspace(0, 1, 30)[:, None]
        actions = np.concatenate([np.sin(3 * t + i), np.cos(2 * t), t, -t], axis=1).astype(np.float32)
        state = np.concatenate([np.repeat([[i, 1 - i]], 30, axis=0), t, rng.normal(size=(30, 36)) * 0.01], axis=1)
        episodes.append(
            Episode(actions, {"state": state.astype(np.float32)}, rng.normal(size=(30, 6)), np.zeros(30), np.zeros(30))
        )
    return write_demo_file(
        tmp_path_factory.mktemp("demos") / "d.hdf5", episodes, "metaworld/reach-v3", "reach-v3", "reach"
    )
