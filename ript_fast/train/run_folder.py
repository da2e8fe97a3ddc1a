"""A run folder belongs to one process and one run: the rules every command that writes one follows.

Why: a run folder holds hours of compute. One mistyped command (a fresh `train` whose `--out` names a finished
run, two processes started on one folder, a `--resume` of the wrong kind of folder) must never empty it, mix
two runs in it, or crash half-way through it. So:

- `new`: the folder must not exist, or be empty. A folder that holds a run is refused with one line that says
  how to continue it (`--resume`) or replace it (`--overwrite`).
- `overwrite`: a folder holding a run is moved aside to `<name>.replaced-<time>` (never deleted), then a new
  run starts. A non-empty folder that holds no ript-fast run is refused: it is not ours to move.
- `resume`: the folder must hold a run of this kind (`ript` or `sft`).
- `auto` (inside a command only, e.g. the SFT stage of `train`): resume when there is a run, else start one.

While a command runs, it holds an exclusive lock on `<folder>/.lock` (flock: released by the kernel however
the process ends, SIGKILL included, so a killed run never leaves a stale lock). `run.json` says what kind of
run the folder holds, and when it was started and resumed by which ript-fast version.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ript_fast
from ript_fast.train.atomic import atomic_write_text

Mode = Literal["new", "resume", "overwrite", "auto"]
Kind = Literal["ript", "sft"]
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
RUN_FORMAT = "ript_fast.run/1"
LEGACY_MARK = "config.yaml"  # what marks a folder as holding a run (folders of older versions have no run.json)
COMMANDS = {"ript": "ript-fast train", "sft": "ript-fast sft"}


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds another run, is in use, is a file, ...); one line."""


@dataclass
class RunFolder:
    """A claimed run folder: the lock stays held until `release()` (or the process ends)."""

    path: Path
    kind: Kind
    resumed: bool
    _lock_fd: int

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_folder(
    path: str | Path, kind: Kind, mode: Mode, check_resume: Callable[[Path], None] | None = None
) -> RunFolder:
    """Checks `path` against the rules above for `mode`, locks it, runs `check_resume(path)` when resuming (a
    refusal there leaves run.json as it was) and records the start or resume in run.json."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} is a file, not a run folder: give --out a folder path")
    held = run_kind(path)
    if mode == "auto":
        mode = "resume" if held is not None else "new"
    if mode == "resume":
        check_resumable(path, kind)
    elif held is not None and mode == "new":
        raise RunFolderError(
            f"{path} already holds a {held} run: continue it with `{COMMANDS[held]} --resume`, move it aside and "
            "start afresh with --overwrite, or choose another --out"
        )
    elif held is None and _has_entries(path):
        raise RunFolderError(f"{path} is not empty and holds no ript-fast run: choose another --out")
    elif held is not None:  # overwrite
        _move_aside(path)
    folder = RunFolder(path, kind, mode == "resume", _lock(path))
    try:
        if folder.resumed and check_resume is not None:
            check_resume(path)
        _record(folder)
    except BaseException:
        folder.release()
        raise
    return folder


def run_kind(path: Path) -> Kind | None:
    """The kind of run a folder holds, or None. A folder holds a run once its config.yaml is written, which a
    command does only after every check passed (a claim that failed before leaves a reusable folder). The kind
    is run.json's, or, for a folder of an older version, guessed from config.yaml's keys."""
    config = path / LEGACY_MARK
    if not config.is_file():
        return None
    info = read_run_info(path)
    if info is not None:
        return info["kind"]
    return "sft" if "\nstages:" in "\n" + config.read_text(errors="replace") else "ript"


def read_run_info(path: Path) -> dict[str, Any] | None:
    """run.json of a folder (None when absent); a damaged one is a RunFolderError naming it."""
    file = path / RUN_FILE
    if not file.is_file():
        return None
    try:
        info = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{file} is damaged ({err}); the folder's run cannot be identified") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT or info.get("kind") not in COMMANDS:
        raise RunFolderError(f"{file} is not a ript-fast run record (format {RUN_FORMAT!r})")
    return info


def check_resumable(path: Path, kind: Kind) -> None:
    """A RunFolderError unless `path` holds a run of this kind (checked before its config is even read)."""
    held = run_kind(path)
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such run folder to resume")
    if held is None:
        raise RunFolderError(f"{path} holds no ript-fast run to resume (no {LEGACY_MARK})")
    if held != kind:
        raise RunFolderError(f"{path} holds a {held} run, not a {kind} run: resume it with `{COMMANDS[held]} --resume`")


def _has_entries(path: Path) -> bool:
    return path.is_dir() and any(p.name not in (LOCK_FILE, RUN_FILE) for p in path.iterdir())


def _move_aside(path: Path) -> Path:
    """Renames a run folder (after making sure no process uses it) or a file to a free
    `<stem>.replaced-<time><suffix>` sibling."""
    if path.is_dir():
        os.close(_lock(path))  # refuses a folder in use; released before the rename
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = path.suffix if path.is_file() else ""
    stem = path.name.removesuffix(suffix) if suffix else path.name
    n = 1
    target = path.with_name(f"{stem}.replaced-{stamp}{suffix}")
    while target.exists():
        n += 1
        target = path.with_name(f"{stem}.replaced-{stamp}-{n}{suffix}")
    try:
        path.rename(target)
    except OSError as err:
        raise RunFolderError(f"cannot move {path} aside to {target}: {err.strerror}") from None
    print(f"moved the old {path} to {target}", file=sys.stderr)
    return target


def _lock(path: Path) -> int:
    """An exclusive, non-blocking flock on `<path>/.lock`; the folder is made if needed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunFolderError(f"cannot write run folder {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES):
            raise RunFolderError(f"{path} is in use by another ript-fast process (pid {owner})") from None
        raise RunFolderError(f"cannot lock run folder {path}: {err.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _record(folder: RunFolder) -> None:
    """Adds this start or resume (time, version) to run.json; the config it ran under is config.yaml."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    info = read_run_info(folder.path) if folder.resumed else None
    if info is None:
        info = {"format": RUN_FORMAT, "kind": folder.kind, "created_by": ript_fast.__version__, "history": []}
    event = "resume" if folder.resumed else "start"
    info["history"].append({"event": event, "time": now, "version": ript_fast.__version__})
    try:
        atomic_write_text(folder.path / RUN_FILE, json.dumps(info, indent=1) + "\n")
    except OSError as err:
        raise RunFolderError(f"cannot write run folder {folder.path}: {err.strerror}") from None


def check_same_run(
    saved_config: Path,
    current: dict[str, Any],
    free_keys: tuple[str, ...],
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> None:
    """Refuses to resume (or reuse a cached stage) under a config that differs from the one the run was made
    with, naming the first differing key; `free_keys` (dotted paths: `ript.iterations`) may differ."""
    from ript_fast.config import first_difference, load_yaml

    diff = first_difference(_without(normalize(load_yaml(saved_config)), free_keys), _without(current, free_keys))
    if diff is not None:
        key, old, new = diff
        raise RunFolderError(
            f"{saved_config.parent} was made with {key}={old!r}, but the config now says {new!r}: resume it "
            "unchanged, or start a new run (--overwrite, or another --out)"
        )


def _without(config: dict[str, Any], dotted_keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(config)
    for dotted in dotted_keys:
        head, _, rest = dotted.partition(".")
        if rest and isinstance(out.get(head), dict):
            out[head] = _without(out[head], (rest,))
        elif not rest:
            out.pop(head, None)
    return out


def claim_output_file(path: str | Path, overwrite: bool, option: str = "--out") -> Path:
    """The rules of a run folder for a single result file (demos, an eval result): an existing file is kept
    unless `overwrite`, which moves it aside to `<stem>.replaced-<time><suffix>`; a folder is refused."""
    path = Path(path)
    if path.is_dir():
        raise RunFolderError(f"{option} {path} is a folder; give a file path")
    if path.exists():
        if not overwrite:
            raise RunFolderError(f"{option} {path} exists: pass --overwrite to move it aside, or choose another path")
        _move_aside(path)
    return path
