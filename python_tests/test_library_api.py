"""ript-fast as a library: `RiptTrainer` handed its objects, with a reward of the caller's and callbacks.

The README's "RIPT from Python" block runs here as written (fewer iterations); the rest pins what the trainer
does with what it is handed: the reward decides which groups are informative and what the advantages are,
callbacks see the run in order, and objects that do not fit are refused with one line naming the argument.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from python_tests.ppo_fixtures import frozen_batch, smoke_policy
from ript_fast import envs
from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.train import run_config
from ript_fast.train.checkpoint import save_policy
from ript_fast.train.ript import RiptTrainer, TrainerCallback
from ript_fast.train.rollout import RolloutTiming
from ript_fast.train.run_config import RiptConfig

README = Path(__file__).resolve().parent.parent / "README.md"
K, GROUPS = 4, 2
TASK = "metaworld/reach-v3"


def readme_example() -> str:
    section = README.read_text().split("## RIPT from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_post_trains_with_its_own_reward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README block, on a small QueST policy saved where it loads from, shortened to fit a test (2 iterations
    instead of 10, one collection round each, episodes of 100 steps): it trains, evaluates before and after,
    rewards with its own function and writes the checkpoint folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_config, "RiptConfig", functools.partial(RiptConfig, max_rounds=1))
    monkeypatch.setattr(envs, "make_vec_env", functools.partial(make_vec_env, max_episode_steps=100))
    save_policy(smoke_policy(), tmp_path / "runs" / "sft" / "policy.safetensors")
    code = readme_example()
    assert "iterations=10" in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("iterations=10", "iterations=2"), "README.md", "exec"), namespace)
    trainer = namespace["trainer"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    assert all(line.split()[-1] != "None" for line in lines), "held-out success before and after every iteration"
    assert trainer.reward_fn is namespace["quick_success"] and trainer.iteration == 2
    assert (tmp_path / "runs" / "reach-quick" / "model.safetensors").is_file()
    namespace["env"].close()
    namespace["eval_env"].close()


# ---- the trainer on handed-in rounds ---------------------------------------------------------------------------
def _all_failed_round(policy, seed: int):
    """A round of GROUPS x K real samples of `policy` in which every rollout failed, with ragged lengths."""
    batch = frozen_batch(policy, GROUPS * K, seed=seed)
    return dataclasses.replace(batch, success=torch.zeros(len(batch), dtype=torch.bool))


def _trainer(policy, env, iterations: int = 1, dynamic_sampling: bool = True, **kwargs: Any) -> RiptTrainer:
    config = RiptConfig(
        iterations=iterations,
        group_size=K,
        batch_rollouts=K * GROUPS,
        contexts_per_round=GROUPS,
        max_rounds=2,
        lr=1e-3,
        dynamic_sampling=dynamic_sampling,
    )
    contexts = ContextDataset.from_env(TASK, 4, seed=1_000)
    return RiptTrainer(policy, env, contexts, config, seed=5, **kwargs)


@pytest.fixture
def env():
    env = make_vec_env(TASK, GROUPS * K, seed=0, autoreset=False)
    yield env
    env.close()


def _one_iteration(trainer: RiptTrainer, rounds: list) -> dict[str, Any]:
    handed = iter(rounds)
    trainer._collect = lambda rows, seed: (next(handed), RolloutTiming())
    trainer.iteration = 1
    return trainer.step()


def test_the_reward_decides_what_trains(env) -> None:
    """Rounds where everything failed: under the default (success) reward every group is all-equal and rejected,
    nothing is updated; a reward of the episode's speed makes the same rounds informative and they train, with
    the success rate still reported as 0."""
    policy = smoke_policy()
    rounds = [_all_failed_round(policy, seed) for seed in (1, 2)]
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}

    record = _one_iteration(_trainer(policy, env), rounds)
    assert record["kept_groups"] == 0 and record["rejected_groups"] == 2 * GROUPS and record["sampling_cap_hit"]
    assert record["informative_groups"] == 0
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())

    def speed(batch):
        return -batch.episode_steps.float() / 100

    record = _one_iteration(_trainer(policy, env, reward_fn=speed), rounds)
    assert record["kept_groups"] == GROUPS and record["informative_groups"] == GROUPS and record["rounds"] == 1
    assert record["train_success"] == 0.0
    assert record["train_reward"] == pytest.approx(float(speed(rounds[0]).mean()))
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())


@pytest.mark.parametrize("dynamic_sampling", [True, False])
def test_a_run_without_any_success_says_so_once(env, dynamic_sampling: bool) -> None:
    """Iterations in which every rollout failed change nothing (no group's rewards differ, with or without
    dynamic sampling): the record counts 0 informative groups and the trainer warns once, saying why and what to
    do, rather than spending the run on a flat curve in silence."""
    policy = smoke_policy()
    trainer = _trainer(policy, env, iterations=3, dynamic_sampling=dynamic_sampling)
    trainer._collect = lambda rows, seed: (_all_failed_round(policy, seed), RolloutTiming())
    with pytest.warns(RuntimeWarning) as caught:
        records = trainer.train()
    assert [r["informative_groups"] for r in records] == [0, 0, 0]
    assert [r["kept_groups"] for r in records] == ([0, 0, 0] if dynamic_sampling else [GROUPS] * 3)
    told = [str(w.message) for w in caught if "learning signal" in str(w.message)]
    rollouts = records[0]["train_rollouts"]
    assert told == [
        f"RIPT iteration 1: no group had a learning signal (none of its {rollouts} rollouts succeeded), so the "
        "policy did not change. RIPT learns from contexts where some of the K rollouts succeed and some fail: "
        "start from a policy that succeeds sometimes (more demos, a longer SFT, a stronger prior)."
    ]


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        (lambda b: b.success.float()[:-1], r"got shape \(7,\)$"),
        (lambda b: torch.full((len(b),), float("nan")), "got non-finite values$"),
        (lambda b: b.success.float()[:, None], r"got shape \(8, 1\)$"),
    ],
)
def test_a_bad_reward_is_one_line(env, reward, message: str) -> None:
    policy = smoke_policy()
    with pytest.raises(
        ValueError, match=f"^reward_fn: must return {GROUPS * K} finite rewards, one per rollout, " + message
    ):
        _one_iteration(_trainer(policy, env, reward_fn=reward), [_all_failed_round(policy, 1)])


def test_objects_that_do_not_fit_are_refused(env) -> None:
    policy = smoke_policy()
    small = make_vec_env(TASK, K, seed=0, autoreset=False)
    mixed = make_vec_env([TASK, "metaworld/push-v3"], GROUPS * K, seed=0, autoreset=False)
    resetting = make_vec_env(TASK, GROUPS * K, seed=0)
    held_out = ContextDataset.from_env(TASK, 3, seed=100_000)
    try:
        with pytest.raises(ValueError, match=r"^env: has 4 envs, but a collection round runs .* = 2 x 4 = 8$"):
            _trainer(policy, small)
        with pytest.raises(ValueError, match=r"^env: envs 0..3 form group 0 and must run one task$"):
            _trainer(policy, mixed)
        with pytest.raises(ValueError, match=r"^env: must be made with autoreset=False"):
            _trainer(policy, resetting)
        with pytest.raises(ValueError, match=r"^eval_env: must have one env per held-out context .*\(3\), has 4"):
            _trainer(policy, env, eval_env=small, eval_contexts=held_out)
        with pytest.raises(ValueError, match=r"^evaluate: the trainer was given no eval_contexts"):
            _trainer(policy, env).evaluate()
        config = RiptConfig(group_size=K, batch_rollouts=K * GROUPS, contexts_per_round=GROUPS, overlap_acting=True)
        with pytest.raises(ValueError, match=r"^env: overlap_acting needs an env that can step some of its envs"):
            RiptTrainer(policy, _GymnasiumStep(env), ContextDataset.from_env(TASK, 4, seed=1_000), config)
    finally:
        for e in (small, mixed, resetting):
            e.close()


class _GymnasiumStep:
    """A vector env whose step takes the actions alone (gymnasium's signature): it cannot step half a batch."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def step(self, actions: Any) -> Any:
        return self._env.step(actions)


def test_overlap_acting_collects_and_trains() -> None:
    """With `overlap_acting` the trainer collects (the policy acting for one half of the round while the engine
    steps the other) and updates as any run does."""
    policy = smoke_policy()
    config = RiptConfig(
        group_size=K, batch_rollouts=K * GROUPS, contexts_per_round=GROUPS, dynamic_sampling=False, overlap_acting=True
    )

    def likelihood(batch):  # differs between the rollouts of a context (the untrained policy never succeeds)
        return (batch.logprob_old * batch.query_mask[..., None]).sum(dim=(1, 2))

    contexts = ContextDataset.from_env(TASK, 4, seed=1_000)
    env = make_vec_env(TASK, GROUPS * K, seed=0, autoreset=False, max_episode_steps=50)
    try:
        trainer = RiptTrainer(policy, env, contexts, config, reward_fn=likelihood, seed=5)
        before = {n: p.detach().clone() for n, p in policy.named_parameters()}
        record = trainer.step()
    finally:
        env.close()
    assert record["train_rollouts"] == K * GROUPS and record["kept_groups"] == GROUPS
    assert record["env_steps"] == K * GROUPS * 50 and record["time_policy_act"] > 0
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())


class _Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_begin(self, trainer: RiptTrainer) -> None:
        self.calls.append("begin")

    def on_evaluate(self, trainer: RiptTrainer, result: dict[str, Any]) -> None:
        self.calls.append(f"evaluate {trainer.iteration} {result['eval_episodes']}")

    def on_log(self, trainer: RiptTrainer, record: dict[str, Any]) -> None:
        self.calls.append(f"log {record['iteration']}")

    def on_iteration_end(self, trainer: RiptTrainer) -> None:
        self.calls.append(f"end {trainer.iteration}")

    def on_train_end(self, trainer: RiptTrainer) -> None:
        self.calls.append("done")


@pytest.mark.filterwarnings("ignore:RIPT iteration 1. no group had a learning signal")  # its rounds all fail
def test_callbacks_see_the_run_in_order(env) -> None:
    """Evaluation before training and at the last iteration (eval_every 2 of 3 iterations: after 2 and 3), each
    record logged before its iteration ends, the end once; `train` returns the records the callbacks saw."""
    policy = smoke_policy()
    held_out = ContextDataset.from_env(TASK, 2, seed=100_000)
    eval_env = make_vec_env(TASK, 2, seed=1, autoreset=False)
    recorder = _Recorder()
    trainer = _trainer(policy, env, 3, eval_env=eval_env, eval_contexts=held_out, callbacks=[recorder], eval_every=2)
    rounds = iter([_all_failed_round(policy, seed) for seed in range(3 * 2)])
    trainer._collect = lambda rows, seed: (next(rounds), RolloutTiming())
    try:
        records = trainer.train()
    finally:
        eval_env.close()
    assert recorder.calls == [
        "begin",
        "evaluate 0 2",
        "log 0",
        "log 1",
        "end 1",
        "evaluate 2 2",
        "log 2",
        "end 2",
        "evaluate 3 2",
        "log 3",
        "end 3",
        "done",
    ]
    assert [r["iteration"] for r in records] == [0, 1, 2, 3]
    assert np.isfinite([r["eval_success"] for r in records if "eval_success" in r]).all()
