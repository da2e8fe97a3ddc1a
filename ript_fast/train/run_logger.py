"""What a run writes besides checkpoints: metrics.jsonl, the scalars for TensorBoard / W&B, and PNG plots.

One JSON object per logged step in `metrics.jsonl` (appended and flushed, so a killed run loses at most the
line being written; a damaged line is skipped on reading, never the valid records after it), the same scalars
to each tracker of `logging.report_to` (TensorBoard under `tensorboard/`; Weights & Biases under `wandb/`, its
run id derived from the run folder so a resumed run continues the same W&B run), and PNG plots redrawn from
the full history so the curves can be looked at without either.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ript_fast.config import ConfigError
from ript_fast.train.atomic import atomic_write_text
from ript_fast.train.binomial import wilson_interval
from ript_fast.train.run_folder import read_run_info

METRICS_FILE = "metrics.jsonl"


@dataclass
class LoggingConfig:
    """Where a run's scalars go besides metrics.jsonl and the plots."""

    report_to: list[Literal["tensorboard", "wandb"]] = field(default_factory=lambda: ["tensorboard"])
    wandb_project: str = "ript-fast"
    wandb_entity: str | None = None  # None: the logged-in user's default entity


class _Tracker(Protocol):
    def log(self, scalars: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class RunLogger:
    """Appends metrics to `run_dir/metrics.jsonl` and the trackers of `logging`, and draws PNG plots on request.
    `config` (the run's resolved config) goes to W&B as the run's config."""

    def __init__(
        self,
        run_dir: str | Path,
        step_key: str = "iteration",
        logging: LoggingConfig | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.step_key = step_key
        self.history: list[dict[str, Any]] = read_metrics(self.run_dir, step_key)
        self._rewrite()  # a torn last line (a killed write) must not swallow the next record appended to it
        logging = logging or LoggingConfig()
        self._trackers: list[_Tracker] = []
        if "tensorboard" in logging.report_to:
            self._trackers.append(_TensorBoard(self.run_dir))
        if "wandb" in logging.report_to:
            self._trackers.append(_WandB(self.run_dir, logging, dict(config or {})))

    def log(self, metrics: Mapping[str, Any]) -> None:
        """Records one step's metrics (must include the step key)."""
        record = dict(metrics)
        step = int(record[self.step_key])
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.history.append(record)
        scalars = {
            k: float(v)
            for k, v in record.items()
            if k != self.step_key and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for tracker in self._trackers:
            tracker.log(scalars, step)

    def plot(self, filename: str, spec: PlotSpec) -> Path:
        """Draws the spec's metric keys against the step key into `run_dir/<filename>` (PNG)."""
        return plot_metrics(self.history, self.run_dir / filename, spec, self.step_key)

    def truncate(self, last_step: int) -> None:
        """Drops records after `last_step` (a resumed run logs them again) from the file and the history."""
        self.history = [r for r in self.history if int(r[self.step_key]) <= last_step]
        self._rewrite()

    def _rewrite(self) -> None:
        """The file as the valid records of the history, one per line (only when it differs)."""
        path = self.run_dir / METRICS_FILE
        text = "".join(json.dumps(r) + "\n" for r in self.history)
        if not path.exists() or path.read_text(errors="replace") != text:
            atomic_write_text(path, text)

    def close(self) -> None:
        for tracker in self._trackers:
            tracker.close()


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _WandB:
    """One W&B run per run folder (`wandb_run_id`), resumed when the folder is: steps a killed run logged past its
    checkpoint are logged again with the same step numbers, which W&B keeps as the later values. Offline when
    WANDB_MODE=offline (synced later with `wandb sync <run>/wandb/offline-run-*`)."""

    def __init__(self, run_dir: Path, logging: LoggingConfig, config: dict[str, Any]) -> None:
        import wandb

        self._run = wandb.init(
            project=logging.wandb_project,
            entity=logging.wandb_entity,
            dir=str(run_dir),
            name=run_dir.resolve().name,
            id=wandb_run_id(run_dir),
            resume="allow",
            config=config,
        )

    def log(self, scalars: dict[str, float], step: int) -> None:
        self._run.log(scalars, step=step)

    def close(self) -> None:
        self._run.finish()


def wandb_run_id(run_dir: Path) -> str:
    """A W&B run id that names this run folder for its whole life: a hash of its path and the time its run first
    started (run.json), so a resume continues the run and a new run in the same folder (overwrite) starts another."""
    info = read_run_info(run_dir) or {}
    started = (info.get("history") or [{}])[0].get("time", "")
    return hashlib.sha1(f"{run_dir.resolve()}|{started}".encode()).hexdigest()[:16]


def check_logging(logging: LoggingConfig, key: str) -> None:
    """A tracker that cannot start is one line naming the key, before any run work: W&B needs its package."""
    if "wandb" in logging.report_to and importlib.util.find_spec("wandb") is None:
        raise ConfigError(f"{key}.report_to: wandb needs the wandb package: pip install 'ript-fast[wandb]'")


def read_metrics(run_dir: str | Path, step_key: str | None = None) -> list[dict[str, Any]]:
    """The metrics history of a run folder: every valid record (a JSON object, with an integer `step_key` when
    given). A damaged line (torn by a kill mid-write, or edited) is skipped with a warning naming it, and the
    records after it are kept."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or (step_key is not None and not isinstance(record.get(step_key), int)):
            warnings.warn(f"{path}:{number}: damaged metrics line skipped", stacklevel=2)
            continue
        records.append(record)
    return records


@dataclass(frozen=True)
class PlotSpec:
    """One curve plot: metric keys, their legend labels, and for success rates the key of each one's episode count
    (then the axis is [0, 1] and each curve carries its 95% Wilson band)."""

    keys: tuple[str, ...]
    title: str
    ylabel: str
    labels: Mapping[str, str] = field(default_factory=dict)
    counts: Mapping[str, str] = field(default_factory=dict)


def plot_metrics(history: Sequence[Mapping[str, Any]], out: Path, spec: PlotSpec, step_key: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key in spec.keys:
        rows = [r for r in history if _is_number(r.get(key))]
        if not rows:
            continue
        xs, ys = [r[step_key] for r in rows], [r[key] for r in rows]
        line = ax.plot(xs, ys, marker="o", label=spec.labels.get(key, key))[0]
        count = spec.counts.get(key)
        banded = [
            (r[step_key], *wilson_interval(r[key] * r[count], int(r[count]))) for r in rows if count and r.get(count)
        ]
        if banded:
            bx, low, high = zip(*banded, strict=True)
            ax.fill_between(bx, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if spec.counts:
        ax.set_ylim(0.0, 1.0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations and steps are whole numbers
    ax.set_title(spec.title)
    ax.set_xlabel(step_key)
    ax.set_ylabel(spec.ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
