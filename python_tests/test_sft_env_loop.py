"""collect-demos -> sft -> eval through a stand-in vector env with the engine's contract (docs/ARCHITECTURE.md).

The stand-in is a point reacher: the hand (obs[0:3]) moves by 0.1 * action[:3] per step, the goal sits in
obs[36:39], success is being within 0.05 of it, 40 steps at most. It keeps the parts of the contract the
policy side relies on: get_state/init_state contexts, autoreset=False freezing, info["success"], rgb obs.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from ript_fast.cli import main
from ript_fast.config import load_config
from ript_fast.data import read_demo_file
from ript_fast.data.collect import TooFewDemosError, collect_demos
from ript_fast.train.checkpoint import load_policy
from ript_fast.train.evaluate import evaluate
from ript_fast.train.sft import SftConfig, run_sft

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "sft_quest_smoke.yaml"
MAX_STEPS = 40


class PointReachEnv:
    def __init__(
        self, name: str | list[str], num_envs: int, seed: int | None = None, obs_mode: str = "state", autoreset=True
    ) -> None:
        assert set([name] if isinstance(name, str) else name) == {"metaworld/point-reach-v3"}  # one name, or per env
        self.num_envs, self.obs_mode = num_envs, obs_mode
        self.single_action_space = types.SimpleNamespace(shape=(4,))
        self.instructions = ["reach the point"] * num_envs
        self.task_names = ["point-reach-v3"] * num_envs
        self.hand = np.zeros((num_envs, 3))
        self.goal = np.zeros((num_envs, 3))
        self.t = np.zeros(num_envs, dtype=int)
        self.done = np.zeros(num_envs, dtype=bool)

    def get_state(self) -> np.ndarray:  # the context of the current episode, as the engine defines it
        return self.context.copy()

    def reset(self, seed: int | None = None, options: dict | None = None):  # type: ignore[no-untyped-def]
        if options and "init_state" in options:
            state = np.asarray(options["init_state"])
            self.hand, self.goal = state[:, :3].copy(), state[:, 3:6].copy()
        else:
            rng = np.random.default_rng(seed)
            self.hand, self.goal = rng.uniform(-1, 1, (self.num_envs, 3)), rng.uniform(-1, 1, (self.num_envs, 3))
        self.context = np.concatenate([self.hand, self.goal], axis=1)
        self.t[:] = 0
        self.done[:] = False
        return self._obs(), {}

    def step(self, actions: np.ndarray):  # type: ignore[no-untyped-def]
        assert actions.shape == (self.num_envs, 4)
        live = ~self.done
        self.hand[live] += 0.1 * np.clip(actions[live, :3], -1, 1)
        self.t[live] += 1
        success = np.linalg.norm(self.hand - self.goal, axis=1) < 0.05
        terminated = success | self.done
        truncated = (self.t >= MAX_STEPS) & ~terminated
        self.done |= terminated | truncated
        info = {"success": success, "sim_error": np.zeros(self.num_envs, dtype=bool)}
        return self._obs(), success.astype(np.float32), terminated, truncated, info

    def _obs(self):  # type: ignore[no-untyped-def]
        state = np.zeros((self.num_envs, 39), dtype=np.float32)
        state[:, :3], state[:, 36:] = self.hand, self.goal
        if self.obs_mode == "state":
            return state
        rgb = np.zeros((self.num_envs, 8, 8, 3), dtype=np.uint8)
        rgb[..., 0] = (127 * (self.hand[:, :1, None] + 1)).astype(np.uint8)
        return {"state": state, "rgb": rgb}

    def close(self) -> None:
        pass


def expert_actions(obs: np.ndarray, task_names: list[str]) -> np.ndarray:
    move = np.clip((obs[:, 36:39] - obs[:, :3]) * 10, -1, 1)
    return np.concatenate([move, np.zeros((len(obs), 1))], axis=1).astype(np.float32)


@pytest.fixture(autouse=True)
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("ript_fast.envs")
    module.make_vec_env = PointReachEnv  # type: ignore[attr-defined]
    module.expert_actions = expert_actions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ript_fast.envs", module)
    return module


def test_collect_keeps_successes_cut_at_success(tmp_path: Path) -> None:
    path = collect_demos(
        "metaworld/point-reach-v3", 6, tmp_path / "d.hdf5", noise=0.3, seed=3, num_envs=4, progress=False
    )
    demos = read_demo_file(path)
    assert len(demos.episodes) == 6 and demos.instruction == "reach the point"
    for ep in demos.episodes:
        assert ep.rewards[-1] == 1 and ep.rewards[:-1].sum() == 0 and ep.dones[-1] == 1
        assert np.abs(ep.actions).max() <= 1.0
        assert np.allclose(ep.states[0, :3], ep.obs["state"][0, :3])  # states[0] is the context of the episode
        assert len(ep) < MAX_STEPS
    assert demos.attrs["ript_fast"]["noise"] == 0.3
    again = read_demo_file(
        collect_demos("metaworld/point-reach-v3", 6, tmp_path / "e.hdf5", noise=0.3, seed=3, num_envs=4, progress=False)
    )
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(demos.episodes, again.episodes, strict=True))


def test_collect_gives_up_when_the_expert_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: types.ModuleType
) -> None:
    monkeypatch.setattr(fake_engine, "expert_actions", lambda obs, tasks: np.zeros((len(obs), 4), dtype=np.float32))
    with pytest.raises(TooFewDemosError, match="only 0 of"):
        collect_demos("metaworld/point-reach-v3", 2, tmp_path / "d.hdf5", num_envs=2, progress=False)
    assert not (tmp_path / "d.hdf5").exists()


def test_demos_to_sft_to_eval_and_video(tmp_path: Path) -> None:
    demos = collect_demos("metaworld/point-reach-v3", 5, tmp_path / "d.hdf5", seed=0, progress=False)
    cfg = load_config(SftConfig, SMOKE, [f"demos=[{demos}]"])
    ckpt = run_sft(cfg, tmp_path / "run")
    policy = load_policy(ckpt)
    result = evaluate(
        policy,
        "metaworld/point-reach-v3",
        episodes=6,
        batch_size=4,
        video=tmp_path / "v.gif",
        video_episodes=2,
        progress=False,
    )
    assert result.episodes == 6 and 0.0 <= result.success_rate <= 1.0 and result.sampled
    assert 0 < result.mean_episode_steps <= MAX_STEPS
    assert Path(result.video or "").stat().st_size > 0


def test_cli_collect_sft_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demos = tmp_path / "d.hdf5"
    assert main(["collect-demos", "--env", "metaworld/point-reach-v3", "--num-demos", "3", "--out", str(demos)]) == 0
    with h5py.File(demos) as f:
        assert len(f["data"]) == 3
    run = tmp_path / "run"
    assert main(["sft", "--config", str(SMOKE), "--out", str(run), f"demos=[{tmp_path / 'absent.hdf5'}]"]) == 2
    assert "no such demo file" in capsys.readouterr().err
    args = ["sft", "--config", str(SMOKE), "--out", str(run), f"demos=[{demos}]"]
    assert main([*args, "policy.quest.top_kk=3"]) == 2
    assert "top_kk" in capsys.readouterr().err
    assert main([*args, "stages=[{name: foo, steps: 1}]"]) == 2
    assert "'foo' is not a quest stage" in capsys.readouterr().err
    assert main(["sft", "--config", str(SMOKE), "--out", str(run), "demos=[]"]) == 2
    assert "lists no demo files" in capsys.readouterr().err
    assert main(args) == 0
    out = tmp_path / "eval.json"
    argv = ["eval", "--ckpt", str(run / "policy.safetensors"), "--env", "metaworld/point-reach-v3", "--episodes", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 4
    assert main(["eval", "--ckpt", str(tmp_path / "none.safetensors"), "--env", "metaworld/point-reach-v3"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
