"""Context datasets (Sec. 4.1): the initial states + goals RIPT rolls out from.

A context is what `env.reset(options={"init_state": ...})` needs to restart an episode exactly (the env's
`get_state()` vector, `states[0]` of a demo) plus the task and its language goal. Contexts come from the
SFT demos (the paper's default: no extra annotation) or are sampled fresh from the env with `reset(seed)`,
for held-out evaluation and for the context-dataset-size study (App. A.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ript_fast.data.demo_file import DemoFileError, DemoSet, check_stored_context
from ript_fast.envs import contexts as context_layout
from ript_fast.envs.metaworld.tasks import TASK_NAMES


@dataclass
class ContextBatch:
    """Contexts gathered for one rollout batch."""

    states: np.ndarray  # (n, S) float64, zero-padded to the longest when tasks' state sizes differ
    task_names: list[str]
    instructions: list[str]
    env_names: list[str]


FROM_ENV_BATCH = 256  # envs alive at once while fresh contexts are made


def _env_batch(env_name: str | Sequence[str]) -> int:
    """About FROM_ENV_BATCH envs, a whole multiple of the name's task count (env i runs task i % count)."""
    from ript_fast.envs.registry import resolve_tasks

    num_tasks = len(resolve_tasks(env_name))
    return max(FROM_ENV_BATCH // num_tasks, 1) * num_tasks


class ContextDataset:
    """A list of (initial state, task, instruction, env name) the trainer samples from."""

    def __init__(
        self,
        states: Sequence[np.ndarray],
        task_names: Sequence[str],
        instructions: Sequence[str],
        env_names: Sequence[str],
    ) -> None:
        if not (len(states) == len(task_names) == len(instructions) == len(env_names)):
            raise ValueError("states, task_names, instructions and env_names must have the same length")
        if not states:
            raise ValueError("a context dataset needs at least one context")
        self.states = [np.asarray(s, dtype=np.float64).reshape(-1) for s in states]
        self.task_names = list(task_names)
        self.instructions = list(instructions)
        self.env_names = list(env_names)

    def __len__(self) -> int:
        return len(self.states)

    @classmethod
    def from_demos(cls, demo_sets: Sequence[DemoSet], max_per_task: int | None = None) -> ContextDataset:
        """`states[0]` of every episode (of the first `max_per_task` per file), each checked by `context_row`."""
        states, tasks, texts, envs = [], [], [], []
        for ds in demo_sets:
            for i in range(len(ds.episodes[:max_per_task])):
                states.append(context_row(ds, i))
                tasks.append(ds.task_name)
                texts.append(ds.instruction)
                envs.append(ds.env_name)
        return cls(states, tasks, texts, envs)

    @classmethod
    def from_env(
        cls, env_name: str | Sequence[str], num_contexts: int, seed: int, **env_options: object
    ) -> ContextDataset:
        """Fresh contexts: envs reset with seeds seed, seed+1, ... and their `get_state()`; env i runs task
        i % num_tasks. Made `FROM_ENV_BATCH` envs at a time (a whole multiple of the task count, so each
        keeps its task and seed), so a large context set never holds thousands of envs in memory at once."""
        from ript_fast.envs import make_vec_env

        batch = num_contexts if num_contexts <= FROM_ENV_BATCH else _env_batch(env_name)
        states, tasks, texts = [], [], []
        for start in range(0, num_contexts, batch):
            count = min(batch, num_contexts - start)
            env = make_vec_env(env_name, num_envs=count, seed=seed + start, **env_options)
            try:
                env.reset(seed=seed + start)
                states += list(np.asarray(env.get_state()))
                tasks += list(env.task_names)
                texts += list(env.instructions)
            finally:
                env.close()
        benchmark = env_name if isinstance(env_name, str) else env_name[0]
        return cls(states, tasks, texts, [task_env_name(benchmark, t) for t in tasks])

    def gather(self, index: Sequence[int]) -> ContextBatch:
        rows = [self.states[i] for i in index]
        width = max(r.shape[0] for r in rows)
        states = np.zeros((len(rows), width))
        for j, r in enumerate(rows):
            states[j, : r.shape[0]] = r
        return ContextBatch(
            states,
            [self.task_names[i] for i in index],
            [self.instructions[i] for i in index],
            [self.env_names[i] for i in index],
        )

    def task_env_names(self, rows: Sequence[int]) -> list[str]:
        """The single-task env name (`<benchmark>/<task>`) of each row's context: a vector env made from these
        names runs row i's task on env i, whatever group name (`metaworld/ML45`) the contexts came from."""
        return [task_env_name(self.env_names[i], self.task_names[i]) for i in rows]

    def sample(self, n: int, generator: torch.Generator) -> ContextBatch:
        """n contexts drawn uniformly with replacement."""
        return self.gather(torch.randint(len(self), (n,), generator=generator).tolist())


def task_env_name(env_name: str, task: str) -> str:
    """The env name that runs just `task` of the benchmark `env_name` belongs to (`metaworld/ML45`,
    `reach-v3` -> `metaworld/reach-v3`; `libero/goal`, `goal/<task>` -> `libero/goal/<task>`)."""
    return f"{env_name.split('/', 1)[0]}/{task}"


def context_row(demos: DemoSet, index: int) -> np.ndarray:
    """Episode `index`'s context (its `states[0]`), refused with file, demo and key named where RIPT could not
    restart it: a file without states (LIBERO's and robomimic's datasets may omit them: fine for SFT, not as
    contexts), a row that declares the context layout but is cut short or damaged (`gather` would zero-pad it
    into a corrupt start state), and, for MetaWorld, a row that is not a context of the file's own task
    (MetaWorld has no other kind of state row; LIBERO's [time, qpos, qvel] rows pass)."""
    where = f"{demos.where(index)}/states"
    states = demos.episodes[index].states
    if states.shape[1] == 0:
        raise DemoFileError(
            f"{where} is absent: this file stores no initial states, so it cannot give RIPT contexts "
            "(contexts.source=demos); use contexts.source=env, or demos recorded with their states"
        )
    row = states[0]
    check_stored_context(row, f"{where}[0]")
    if demos.env_name.startswith("metaworld/") and demos.task_name in TASK_NAMES:
        if not context_layout.declares_layout(row):
            raise DemoFileError(f"{where}[0] is not a context vector (layout version {context_layout.VERSION})")
        found, want = context_layout.task_id(row), TASK_NAMES.index(demos.task_name)
        if found != want:
            task = TASK_NAMES[found] if 0 <= found < len(TASK_NAMES) else "no MetaWorld task"
            raise DemoFileError(
                f"{where}[0] is a context of task id {found} ({task}), but the file's task is {demos.task_name}"
            )
    return row
