"""Batched rollout collection: finished envs are masked (never stepped or queried again), bad actions caught,
images rendered only for the queries that read them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from python_tests.ppo_fixtures import SMOKE_CONFIG, smoke_policy
from python_tests.test_env_rgb import _gl_available
from ript_fast.config import load_config
from ript_fast.envs import expert_actions, make_vec_env, rendering
from ript_fast.envs.rendering import BatchRenderer
from ript_fast.policies.base import ChunkSample, Policy, PolicySpec
from ript_fast.policies.factory import build_policy
from ript_fast.train import rollout
from ript_fast.train.evaluate import _FrameRecorder
from ript_fast.train.rollout import NonFiniteActionError, RolloutBatch, collect_rollouts
from ript_fast.train.sft import SftConfig

N = 6


@pytest.fixture(scope="module")
def policy():
    return smoke_policy()


@pytest.fixture(scope="module")
def contexts() -> np.ndarray:
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=3)
    env.reset(seed=3)
    states = np.array(env.get_state())
    env.close()
    return states


def run(policy, contexts: np.ndarray, max_episode_steps: int = 500):
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=0, autoreset=False, max_episode_steps=max_episode_steps)
    try:
        return collect_rollouts(env, policy, contexts, np.arange(10, 10 + N), np.zeros(N, dtype=np.int64), seed=0)
    finally:
        env.close()


def test_queries_stop_when_an_env_finishes(policy, contexts: np.ndarray) -> None:
    batch, timing = run(policy, contexts, max_episode_steps=37)
    horizon = policy.action_horizon
    queries = batch.query_mask.sum(dim=1)
    assert torch.equal(queries, (batch.episode_steps + horizon - 1) // horizon)
    assert (batch.episode_steps <= 37).all()
    assert timing.env_steps == int(batch.episode_steps.sum())
    assert batch.context_ids.tolist() == list(range(10, 10 + N))
    # the mask is a prefix: no query after an env's last one
    for row in batch.query_mask:
        n = int(row.sum())
        assert row[:n].all() and not row[n:].any()


def test_successful_envs_finish_early_with_reward_one(policy, contexts: np.ndarray, monkeypatch) -> None:
    """An expert policy solves reach quickly: those rollouts end at success with reward 1 and stop querying."""
    from ript_fast.envs import expert_actions

    def expert_act(obs, sample=True):
        state = obs.state.double().numpy()
        actions = torch.as_tensor(expert_actions(state, ["reach-v3"] * len(state)), dtype=torch.float32)
        n = len(state)
        chunk = actions[:, None].repeat(1, policy.action_horizon, 1)
        return ChunkSample(chunk, torch.zeros(n, 2, dtype=torch.int64), torch.zeros(n, 2), {"c": torch.zeros(n, 1)})

    monkeypatch.setattr(policy, "act", expert_act)
    batch, _ = run(policy, contexts)
    assert batch.rewards.tolist() == [1.0] * N
    assert (batch.episode_steps < 500).all()


def test_nan_actions_are_reported_with_their_contexts(policy, contexts: np.ndarray, monkeypatch) -> None:
    real_act = policy.act

    def broken_act(obs, sample=True):
        chunk = real_act(obs, sample)
        chunk.actions[1] = float("nan")
        return chunk

    monkeypatch.setattr(policy, "act", broken_act)
    with pytest.raises(NonFiniteActionError, match=r"contexts \[11\]"):
        run(policy, contexts)


@pytest.mark.parametrize("sample", [True, False])
def test_nan_weights_are_reported_sampled_or_greedy(contexts: np.ndarray, sample: bool) -> None:
    """NaN weights make multinomial fail (sampling) or decode finite actions with NaN log-probs (greedy):
    both are reported as the policy's fault, with the contexts."""
    broken = smoke_policy()
    with torch.no_grad():
        for p in broken.prior.parameters():
            p.fill_(float("nan"))
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=0, autoreset=False)
    with pytest.raises(NonFiniteActionError, match=r"NaN \(contexts \[10, 11, 12, 13, 14, 15\]\)"):
        collect_rollouts(env, broken, contexts, np.arange(10, 10 + N), np.zeros(N, dtype=np.int64), 0, sample=sample)


# ---- images ------------------------------------------------------------------------------------------------

requires_gl = pytest.mark.skipif(not _gl_available(), reason="no OpenGL backend (set MUJOCO_GL=egl with libegl1)")


def image_policy() -> Policy:
    """The smoke QueST policy reading a 32-px camera image, its obs encoder trainable so that every query's
    images are kept in its cond (and so compared below)."""
    overrides = ["policy.obs.image_keys=[rgb]", "policy.obs.image_size=32", "policy.obs.image_embed_dim=16"]
    cfg = load_config(SftConfig, SMOKE_CONFIG, [*overrides, "policy.quest.rl_trainable=[prior, obs_encoder]"])
    torch.manual_seed(0)
    spec = PolicySpec(action_dim=4, state_dim=39, task_names=["reach-v3"], instructions=["reach"])
    policy = build_policy(cfg.policy, spec).eval()
    policy.freeze_for_rl()
    return policy


def steer_to_goal(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's chunks (sampled from its images) plus the scripted expert's action at the query: the
    episodes depend on the images and end at different steps, so queries read ever smaller subsets of envs."""
    real_act = policy.act

    def act(obs, sample=True):
        chunk = real_act(obs, sample)
        expert = expert_actions(obs.state.double().numpy(), ["reach-v3"] * len(obs.state))
        chunk.actions = torch.as_tensor(expert, dtype=torch.float32)[:, None] + 0.05 * chunk.actions
        return chunk

    monkeypatch.setattr(policy, "act", act)


def image_env(n: int, max_steps: int):
    options = {"autoreset": False, "max_episode_steps": max_steps, "render_size": (32, 32)}
    return make_vec_env("metaworld/reach-v3", n, seed=0, obs_mode="state+rgb", **options)


def image_rollouts(policy: Policy, env, contexts: np.ndarray, render_every_step: bool) -> RolloutBatch:
    """The rollouts of `env` (closed after) from `contexts`, policy sampling from a fixed torch seed."""
    torch.manual_seed(1)
    n = len(contexts)
    try:
        return collect_rollouts(
            env, policy, contexts, np.arange(n), np.zeros(n, np.int64), 0, render_every_step=render_every_step
        )[0]
    finally:
        env.close()


@requires_gl
def test_image_rollouts_on_demand_equal_every_step_rollouts(contexts: np.ndarray, monkeypatch) -> None:
    """Same seeds: the same images reach the policy, so the same samples, log-probs, rewards and lengths; and
    on demand, only the queried envs' frames are rendered (one per query row)."""
    policy = image_policy()
    steer_to_goal(policy, monkeypatch)
    drawn: list[int] = []  # frames drawn by each render call
    render = BatchRenderer.render

    def counting(self: BatchRenderer, rows=None, cameras=None) -> None:
        before = self.frames_drawn
        render(self, rows, cameras)
        drawn.append(self.frames_drawn - before)

    monkeypatch.setattr(BatchRenderer, "render", counting)
    every = image_rollouts(policy, image_env(N, 60), contexts, render_every_step=True)
    every_drawn = sum(drawn)
    drawn.clear()
    lazy = image_rollouts(policy, image_env(N, 60), contexts, render_every_step=False)
    assert len(set(every.episode_steps.tolist())) > 1 and every.rewards.sum() > 0  # ragged: subsets were queried
    for name in ("rewards", "episode_steps", "query_mask", "decisions", "logprob_old"):
        assert torch.equal(getattr(lazy, name), getattr(every, name)), name
    assert lazy.cond.keys() == every.cond.keys() and "image/rgb" in lazy.cond
    for key in every.cond:
        assert torch.equal(lazy.cond[key], every.cond[key]), key
    assert sum(drawn) == int(lazy.query_mask.sum()) and every_drawn == N * (1 + int(every.episode_steps.max()))


@requires_gl
@pytest.mark.parametrize("every_step", [False, True])
def test_drawing_time_is_its_own_line_of_the_rollout_time(
    every_step: bool, contexts: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollout time splits into stepping, resetting, drawing and acting: with every draw slowed by 0.1 s, all of
    that lands in env_render (reset's frame too, when every step renders), none in env_step or env_reset."""
    calls: list[None] = []

    def slow_draw(real):
        def wrapped(self, rows, wanted) -> None:
            calls.append(None)
            time.sleep(0.1)
            real(self, rows, wanted)

        return wrapped

    for backend in (rendering._EngineDraw, rendering._PythonDraw):
        monkeypatch.setattr(backend, "draw", slow_draw(backend.draw))
    env = image_env(2, 16)
    n = 2
    try:
        start = time.perf_counter()
        _, timing = collect_rollouts(
            env, image_policy(), contexts[:n], np.arange(n), np.zeros(n, np.int64), 0, render_every_step=every_step
        )
        wall = time.perf_counter() - start
    finally:
        env.close()
    assert len(calls) >= 2 and timing.env_render >= 0.1 * len(calls)
    assert timing.env_reset < 0.1 and timing.env_step < 0.1 * len(calls)
    parts = timing.env_step + timing.env_reset + timing.env_render + timing.policy_act
    assert parts <= wall


@requires_gl
def test_video_frames_are_the_every_step_frames(contexts: np.ndarray, monkeypatch) -> None:
    """evaluate's video asks the on-demand env for every frame: they are the frames an env rendering every step
    returns, reset included."""
    policy = image_policy()
    steer_to_goal(policy, monkeypatch)
    observed: list[np.ndarray] = []

    def keep(out):
        observed.append(out[0]["rgb"].copy())
        return out

    env = image_env(2, 20)
    reset, step = env.reset, env.step
    monkeypatch.setattr(env, "reset", lambda **kw: keep(reset(**kw)))
    monkeypatch.setattr(env, "step", lambda actions: keep(step(actions)))
    image_rollouts(policy, env, contexts[:2], render_every_step=True)
    recorder = _FrameRecorder(image_env(2, 20))
    image_rollouts(policy, recorder, contexts[:2], render_every_step=False)
    assert len(recorder.frames) == len(observed) == 21
    for t, (frame, expected) in enumerate(zip(recorder.frames, observed, strict=True)):
        np.testing.assert_array_equal(frame, expected, err_msg=f"step {t}")


def test_evaluate_runs_every_context_on_its_own_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ript-fast eval` of a two-task name in batches of one: the batch of context i makes its env for context i's
    task (a batch need not start at task 0), and the result counts each task's episodes."""
    from ript_fast import envs
    from ript_fast.train.evaluate import evaluate

    tasks = ["reach-v3", "push-v3"]
    cfg = load_config(SftConfig, SMOKE_CONFIG).policy
    policy = build_policy(cfg, PolicySpec(action_dim=4, state_dim=39, task_names=tasks, instructions=tasks))
    made: list[list[str]] = []

    def recording(names, num_envs, **options):
        made.append(list(names))
        return make_vec_env(names, num_envs, **{**options, "max_episode_steps": 16})

    monkeypatch.setattr(envs, "make_vec_env", recording)
    result = evaluate(policy, [f"metaworld/{t}" for t in tasks], episodes=3, batch_size=1, progress=False)
    assert made[1:] == [["metaworld/reach-v3"], ["metaworld/push-v3"], ["metaworld/reach-v3"]]  # after the contexts
    assert result.episodes == 3 and set(result.per_task) == set(tasks)


def halves_rollouts(policy: Policy, env, contexts: np.ndarray, threaded: bool) -> RolloutBatch:
    """The batch as two halves taking turns, the policy acting on its own thread (overlap) or on this one."""
    torch.manual_seed(1)
    n = len(contexts)
    try:
        with env.rendering_mode(every_step=False):
            ids, tasks = np.arange(n), np.zeros(n, np.int64)
            return rollout._collect(env, policy, contexts, ids, tasks, 0, True, 0.0, halves=True, threaded=threaded)[0]
    finally:
        env.close()


@pytest.mark.parametrize("images", [False, pytest.param(True, marks=requires_gl)])
def test_overlapped_rollouts_equal_the_halves_taking_turns(
    images: bool, contexts: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acting on a thread of its own while the engine steps (and draws) the other half changes nothing: the same
    samples, log-probs, images, rewards and lengths as the two halves taking turns on one thread."""
    policy = image_policy() if images else smoke_policy()
    steer_to_goal(policy, monkeypatch)

    def make():
        if images:
            return image_env(N, 60)
        return make_vec_env("metaworld/reach-v3", N, seed=0, autoreset=False, max_episode_steps=60)

    turns = halves_rollouts(policy, make(), contexts, threaded=False)
    overlapped = halves_rollouts(policy, make(), contexts, threaded=True)
    assert len(set(turns.episode_steps.tolist())) > 1 and turns.rewards.sum() > 0  # ragged: halves shrink
    for name in ("success", "rewards", "episode_steps", "query_mask", "decisions", "logprob_old"):
        assert torch.equal(getattr(overlapped, name), getattr(turns, name)), name
    assert overlapped.cond.keys() == turns.cond.keys() and ("image/rgb" in turns.cond) == images
    for key in turns.cond:
        assert torch.equal(overlapped.cond[key], turns.cond[key]), key
    for row in overlapped.query_mask:  # each rollout's queries fill its first columns, in order
        n = int(row.sum())
        assert row[:n].all() and not row[n:].any()


def test_overlap_steps_one_half_while_the_policy_acts_for_the_other(
    policy, contexts: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy acts on its own thread, and the engine steps the other half's envs during an act (a slow act
    makes the window wide); each step moves one half only."""
    events: list[tuple[str, float, object]] = []
    real_act = policy.act

    def slow_act(obs, sample=True):
        events.append(("act", time.perf_counter(), threading.current_thread().name))
        time.sleep(0.2)
        chunk = real_act(obs, sample)
        events.append(("acted", time.perf_counter(), None))
        return chunk

    monkeypatch.setattr(policy, "act", slow_act)
    env = make_vec_env("metaworld/reach-v3", N, seed=0, autoreset=False, max_episode_steps=24)
    real_step = env.step

    def step(actions, env_ids=None):
        events.append(("step", time.perf_counter(), tuple(env_ids.tolist())))
        return real_step(actions, env_ids=env_ids)

    monkeypatch.setattr(env, "step", step)
    try:
        batch, _ = collect_rollouts(env, policy, contexts, np.arange(N), np.zeros(N, np.int64), 0, overlap=True)
    finally:
        env.close()
    assert {name for kind, _, name in events if kind == "act"} == {"ript-act_0"}
    assert {ids for kind, _, ids in events if kind == "step"} == {(0, 1, 2), (3, 4, 5)}
    starts = [t for kind, t, _ in events if kind == "act"]
    ends = [t for kind, t, _ in events if kind == "acted"]
    acting = list(zip(starts, ends, strict=True))  # one act at a time, on one thread
    assert any(kind == "step" and any(a < t < b for a, b in acting) for kind, t, _ in events)
    assert (batch.episode_steps == 24).all()
