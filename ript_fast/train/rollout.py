"""Rollout collection: K rollouts of each context, all stepped as one batch in the engine.

One call runs a whole batch of episodes to the end. The policy is queried once per action chunk for all
still-running envs in one forward pass; an env that finishes (success or time limit) is masked: the engine
does not step it again (`autoreset=False`) and it is never queried again. What each query sampled, its
log-prob at sampling time and its conditioning are kept, per rollout, for the PPO update.

Images are rendered on demand: the env steps without drawing anything, and each query asks it for the frames of
the envs it queries (`env.render_observations`), one step in `action_horizon`. The frames are the ones an env
rendering every step would have returned at those steps, so the rollouts are the same, with a fraction of the
rendering.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from ript_fast.data.contexts import ContextDataset
from ript_fast.policies.base import ChunkSample, Observation, Policy


class NonFiniteActionError(RuntimeError):
    """The policy produced NaN/inf actions: reported with the contexts concerned instead of being stepped."""


@dataclass
class RolloutBatch:
    """R finished rollouts, queries padded to Q per rollout (`query_mask` marks the real ones).

    Rollouts of one group (the K rollouts of one context) are consecutive: rollout r is in group r // K.
    """

    success: torch.Tensor  # (R,) bool: the env's success flag, reached before the episode ended
    rewards: torch.Tensor  # (R,) float32: what RLOO and PPO optimise (the trainer's reward fn; made: success)
    context_ids: torch.Tensor  # (R,) int64 index of the context in the context dataset
    episode_steps: torch.Tensor  # (R,) int64 env steps taken
    query_mask: torch.Tensor  # (R, Q) bool
    decisions: torch.Tensor  # (R, Q, L) int64 tokens, or (R, Q, L, D) float32
    logprob_old: torch.Tensor  # (R, Q, L) float32 per-element log-prob at sampling time
    cond: dict[str, torch.Tensor] = field(default_factory=dict)  # (R, Q, ...) each

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_queries(self) -> int:
        return int(self.query_mask.shape[1])

    def select(self, index: torch.Tensor | Sequence[int]) -> RolloutBatch:
        """The rollouts at `index`, trimmed to the longest of them."""
        index = torch.as_tensor(index, dtype=torch.int64)
        q = int(self.query_mask[index].sum(dim=1).max().item()) if len(index) else 0
        return self._map(lambda t, per_query: t[index, :q] if per_query else t[index])

    @staticmethod
    def cat(batches: Sequence[RolloutBatch]) -> RolloutBatch:
        """Concatenates batches along rollouts, padding their queries to a common Q."""
        q = max(b.num_queries for b in batches)
        padded = [b.pad_queries(q) for b in batches]
        first = padded[0]
        out = {}
        for f in fields(RolloutBatch):
            if f.name == "cond":
                out["cond"] = {k: torch.cat([b.cond[k] for b in padded]) for k in first.cond}
            else:
                out[f.name] = torch.cat([getattr(b, f.name) for b in padded])
        return RolloutBatch(**out)

    def pad_queries(self, q: int) -> RolloutBatch:
        extra = q - self.num_queries
        if extra <= 0:
            return self

        def pad(t: torch.Tensor, per_query: bool) -> torch.Tensor:
            if not per_query:
                return t
            filler = t.new_zeros((t.shape[0], extra, *t.shape[2:]))
            return torch.cat([t, filler], dim=1)

        return self._map(pad)

    def _map(self, fn) -> RolloutBatch:  # fn(tensor, per_query: bool) -> tensor
        per_query = {"query_mask", "decisions", "logprob_old"}
        changed = {f.name: fn(getattr(self, f.name), f.name in per_query) for f in fields(self) if f.name != "cond"}
        changed["cond"] = {k: fn(v, True) for k, v in self.cond.items()}
        return replace(self, **changed)


@dataclass
class RolloutTiming:
    """Wall-clock seconds of one collection, split where the time goes."""

    env_step: float = 0.0  # stepping (physics, controller, observations, success)
    env_reset: float = 0.0
    env_render: float = 0.0  # drawing frames (on demand: the queries'; every step: each step's and reset's)
    policy_act: float = 0.0
    env_steps: int = 0  # env steps actually simulated (finished envs excluded)

    def add(self, other: RolloutTiming) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def collect_rollouts(
    env,
    policy: Policy,
    init_states: np.ndarray,
    context_ids: np.ndarray,
    task_ids: np.ndarray,
    seed: int,
    sample: bool = True,
    context_noise_std: float = 0.0,
    render_every_step: bool = False,
    overlap: bool = False,
) -> tuple[RolloutBatch, RolloutTiming]:
    """Runs one episode per env from `init_states` (N, S) until every env has finished.

    Args:
        env: a vector env from `ript_fast.envs.make_vec_env(..., autoreset=False)` with N envs.
        policy: queried once per action chunk for the envs still running.
        init_states: (N, S) context vectors (`env.get_state()` layout), one per env.
        context_ids: (N,) context index of each env (kept with the rollouts).
        task_ids: (N,) index of each env's task in the policy's task list.
        seed: seeds the reset (context noise) so a collection is reproducible.
        sample: sample from the policy (training) or take its mode (evaluation of deterministic policies).
        context_noise_std: Gaussian noise (m) on the contexts' object positions (paper App. A.4).
        render_every_step: the env renders every env at every step and queries read their images from the
            step's observation (gymnasium's way; the reference the on-demand default is tested against).
        overlap: two halves of the batch take turns, the policy acting for one while the engine steps the other
            (an env that can step some of its envs: `env.step(actions, env_ids=...)`, as ript_fast's envs can).
            The rollouts equal the same two halves run in turn without overlap; the policy's samples differ from
            the one-batch loop's (its queries are other batches, its random draws come in another order).
    """
    n = len(init_states)
    if n != env.num_envs:
        raise ValueError(f"init_states holds {n} contexts but the env has {env.num_envs} envs")
    with _rendering(env, render_every_step):
        return _collect(
            env, policy, init_states, context_ids, task_ids, seed, sample, context_noise_std, overlap, overlap
        )


def rollout_contexts(
    env,
    policy: Policy,
    contexts: ContextDataset,
    rows: np.ndarray,
    seed: int,
    sample: bool,
    context_noise_std: float = 0.0,
    overlap: bool = False,
) -> tuple[RolloutBatch, RolloutTiming]:
    """One episode from each context `rows[i]` of `contexts` on env i: the rollouts of training (K copies of each
    group's row) and of evaluation alike, so the trainer and `ript-fast eval` measure the same loop."""
    rows = np.asarray(rows, dtype=np.int64)
    ctx = contexts.gather(rows.tolist())
    task_ids = policy.task_ids_for(ctx.task_names).numpy()
    return collect_rollouts(env, policy, ctx.states, rows, task_ids, seed, sample, context_noise_std, overlap=overlap)


def _collect(
    env,
    policy: Policy,
    init_states: np.ndarray,
    context_ids: np.ndarray,
    task_ids: np.ndarray,
    seed: int,
    sample: bool,
    context_noise_std: float,
    halves: bool,
    threaded: bool,
) -> tuple[RolloutBatch, RolloutTiming]:
    """collect_rollouts' loop, in the env's rendering mode.

    The batch is one group of envs, or two `halves` taking turns; `threaded`, the policy acts for one half on a
    thread of its own while the engine steps (and renders) the other (both release the GIL). Queries are acted
    on in the order they are made, from one queue, so the policy draws its samples in the same order with or
    without the thread: overlapped rollouts equal the same halves taking turns on one thread.
    """
    timing = RolloutTiming()
    env_time = _EnvClock(env, timing)
    n = len(init_states)
    options: dict[str, object] = {"init_state": init_states}
    if context_noise_std > 0:
        options["context_noise_std"] = context_noise_std
    with env_time("env_reset"):
        obs, _ = env.reset(seed=seed, options=options)

    running = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    steps = np.zeros(n, dtype=np.int64)
    queries: list[tuple[np.ndarray, ChunkSample]] = []
    actions = np.zeros((n, *env.single_action_space.shape), dtype=np.float32)
    instructions = list(env.instructions)
    task_ids_t = torch.as_tensor(task_ids, dtype=torch.int64)
    image_keys = list(policy.policy_config.obs.image_keys)
    groups = np.array_split(np.arange(n), 2) if halves else [np.arange(n)]

    with _Acting(policy, sample, threaded) as acting:

        def query(members: np.ndarray) -> tuple[np.ndarray, Future]:
            """The running envs of a group, and their action chunk to come."""
            ids = members[running[members]]
            with env_time("env_step"):
                images = _query_images(env, obs, ids, image_keys)
            return ids, acting.submit(_observation(obs, images, ids, instructions, task_ids_t, policy))

        turns = deque((members, *query(members)) for members in groups)
        while turns:
            members, ids, future = turns.popleft()
            t0 = time.perf_counter()
            try:
                chunk = future.result()
            except FloatingPointError as err:
                raise NonFiniteActionError(f"{err} (contexts {context_ids[ids].tolist()})") from None
            timing.policy_act += time.perf_counter() - t0  # with overlap: the acting the stepping did not hide
            queries.append((ids, chunk))
            chunk_actions = chunk.actions.numpy()
            _check_finite(chunk_actions, chunk.logprob.numpy(), context_ids[ids])
            for h in range(chunk_actions.shape[1]):
                actions[ids] = chunk_actions[:, h]
                with env_time("env_step"):
                    obs, _, terminated, truncated, info = _step(env, actions, ids if halves else None)
                timing.env_steps += len(ids)
                steps[ids] += 1
                success[ids] |= np.asarray(info["success"], dtype=bool)[ids]
                running[ids] &= ~(np.asarray(terminated) | np.asarray(truncated))[ids]
                # Envs that finished mid-chunk drop out of the rest of it.
                keep = running[ids]
                ids, chunk_actions = ids[keep], chunk_actions[keep]
                if not len(ids):
                    break
            if running[members].any():
                turns.append((members, *query(members)))

    batch = _pack(queries, n, success, steps, context_ids)
    return batch, timing


def _step(env, actions: np.ndarray, ids: np.ndarray | None) -> tuple:
    """One env step of every running env, or of just `ids` (the envs of one half, with overlap)."""
    return env.step(actions) if ids is None else env.step(actions, env_ids=ids)


class _Acting:
    """The policy's action chunks for observations, acted on now, or (`threaded`) in order on a thread of its own
    (grad mode is per thread: each act runs under no_grad where it runs)."""

    def __init__(self, policy: Policy, sample: bool, threaded: bool) -> None:
        self.policy, self.sample = policy, sample
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="ript-act") if threaded else None

    def submit(self, observation: Observation) -> Future:
        if self.pool is not None:
            return self.pool.submit(self._act, observation)
        done: Future = Future()
        try:
            done.set_result(self._act(observation))
        except FloatingPointError as err:
            done.set_exception(err)
        return done

    def _act(self, observation: Observation) -> ChunkSample:
        with torch.no_grad():
            return _to_cpu(self.policy.act(observation, sample=self.sample))

    def __enter__(self) -> _Acting:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _EnvClock:
    """Times env calls into a RolloutTiming field, the frames they drew apart: an env that counts its drawing time
    (`render_seconds`, as the engine's envs do) has it moved to `env_render`."""

    def __init__(self, env, timing: RolloutTiming) -> None:
        self.env, self.timing = env, timing

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start, drawn = time.perf_counter(), self._drawing()
        yield
        render = self._drawing() - drawn
        self.timing.env_render += render
        setattr(self.timing, part, getattr(self.timing, part) + time.perf_counter() - start - render)

    def _drawing(self) -> float:
        return float(getattr(self.env, "render_seconds", 0.0))


def _check_finite(actions: np.ndarray, logprob: np.ndarray, context_ids: np.ndarray) -> None:
    """Actions must be finite, and their log-probs not NaN (NaN weights can still decode finite actions)."""
    n = len(actions)
    for what, bad in (
        ("actions", ~np.isfinite(actions).reshape(n, -1).all(axis=1)),
        ("action log-probs", np.isnan(logprob).reshape(n, -1).any(axis=1)),
    ):
        if bad.any():
            raise NonFiniteActionError(
                f"the policy emitted non-finite {what} for {int(bad.sum())} env(s), "
                f"contexts {context_ids[bad].tolist()}"
            )


def _rendering(env, every_step: bool) -> AbstractContextManager:
    """Engine envs (BatchVecEnv) render in the mode asked for; another gymnasium-style vector env keeps returning
    its images with every observation, and the queries read them there."""
    mode = getattr(env, "rendering_mode", None)
    return nullcontext() if mode is None else mode(every_step=every_step)


def _query_images(
    env, obs: np.ndarray | dict[str, np.ndarray], ids: np.ndarray, keys: list[str]
) -> dict[str, np.ndarray]:
    """The images `keys` of envs `ids` at this step: from the observation when the env rendered every env, else
    rendered now for just these envs."""
    if not keys:
        return {}
    if getattr(env, "render_every_step", True):
        return {k: obs[k][ids] for k in keys}
    return env.render_observations(ids, keys)


def _observation(
    obs: np.ndarray | dict[str, np.ndarray],
    images: dict[str, np.ndarray],
    ids: np.ndarray,
    instructions: list[str],
    task_ids: torch.Tensor,
    policy: Policy,
) -> Observation:
    """The policy's view of envs `ids`; `images` are already those envs' (rows in `ids` order)."""
    device = next(policy.parameters()).device
    if isinstance(obs, dict):
        # The policy's state vector: its obs.state_keys concatenated, as its SFT demos were (e.g. LIBERO's
        # joint_states, ee_pos, gripper_states); else the env's whole "state".
        keys = policy.policy_config.obs.state_keys
        state = np.concatenate([obs[k] for k in keys], axis=1) if all(k in obs for k in keys) else obs.get("state")
    else:
        state = obs
    state_t = None if state is None else torch.as_tensor(state[ids], dtype=torch.float32, device=device)
    return Observation(
        state=state_t,
        instructions=[instructions[i] for i in ids],
        task_ids=task_ids[ids].to(device),
        images={k: torch.as_tensor(v, device=device) for k, v in images.items()},
    )


def _to_cpu(chunk: ChunkSample) -> ChunkSample:
    return ChunkSample(
        actions=chunk.actions.detach().cpu(),
        decision=chunk.decision.detach().cpu(),
        logprob=chunk.logprob.detach().float().cpu(),
        cond={k: v.detach().cpu() for k, v in chunk.cond.items()},
    )


def _pack(
    queries: list[tuple[np.ndarray, ChunkSample]],
    n: int,
    success: np.ndarray,
    steps: np.ndarray,
    context_ids: np.ndarray,
) -> RolloutBatch:
    """Scatters the per-query samples (each over some of the envs still running then) into (N, Q, ...) tensors:
    an env's queries fill its columns 0, 1, ... in the order they were made."""
    made = np.zeros(n, dtype=np.int64)
    columns = []
    for ids, _ in queries:
        columns.append(torch.as_tensor(made[ids], dtype=torch.int64))
        made[ids] += 1
    q = int(made.max())
    first = queries[0][1]
    mask = torch.zeros(n, q, dtype=torch.bool)
    decisions = first.decision.new_zeros((n, q, *first.decision.shape[1:]))
    logprob = torch.zeros(n, q, *first.logprob.shape[1:], dtype=torch.float32)
    cond = {k: v.new_zeros((n, q, *v.shape[1:])) for k, v in first.cond.items()}
    for (ids, chunk), j in zip(queries, columns, strict=True):
        rows = torch.as_tensor(ids, dtype=torch.int64)
        mask[rows, j] = True
        decisions[rows, j] = chunk.decision
        logprob[rows, j] = chunk.logprob
        for k, v in chunk.cond.items():
            cond[k][rows, j] = v
    return RolloutBatch(
        success=torch.as_tensor(success, dtype=torch.bool),
        rewards=torch.as_tensor(success, dtype=torch.float32),
        context_ids=torch.as_tensor(context_ids, dtype=torch.int64),
        episode_steps=torch.as_tensor(steps, dtype=torch.int64),
        query_mask=mask,
        decisions=decisions,
        logprob_old=logprob,
        cond=cond,
    )
