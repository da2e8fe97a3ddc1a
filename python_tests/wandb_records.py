"""Reads back what W&B wrote for an offline run (`WANDB_MODE=offline`): the records of `run-<id>.wandb`.

The file is W&B's transaction log: a 7-byte header (":W&B", magic, version), then LevelDB-log framing in 32 KiB
blocks (each chunk: crc32c 4 bytes, length 2 bytes little-endian, type 1 byte: full 1, first 2, middle 3, last 4;
a block's tail shorter than a chunk header is zero padding), each record a `wandb_internal_pb2.Record`. Checksums
are not verified: the tests only read files W&B has just closed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    out, parts, pos = [], [], HEADER
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        parts.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            out.append(record)
            parts = []
        elif kind == 0:  # zero fill at the end of the file
            break
    return out


def offline_runs(run_dir: Path) -> list[Path]:
    """The run logs of every offline W&B run started in the run folder, oldest first, once W&B's service process
    has stopped: a finished run's log is read as `wandb sync` reads it after the process that wrote it exited (the
    service may still be writing a run's last records when `finish()` has returned; seen twice in full test runs
    on a loaded machine: a log without its history)."""
    import wandb

    wandb.teardown()
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def record_types(path: Path) -> list[str]:
    """The kinds of the records of one run log, in order (what a failed comparison shows)."""
    return [record.WhichOneof("record_type") for record in records(path)]


def history(path: Path) -> dict[int, dict[str, float]]:
    """step -> {key: value} of every history record of one run log."""
    steps: dict[int, dict[str, float]] = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            steps.setdefault(int(record.history.step.num), {}).update(items)
    return steps


def run_record(path: Path) -> tuple[str, str, dict[str, Any]]:
    """(run id, project, config) of the run, as W&B recorded its start (the config's top-level keys)."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update if i.key != "_wandb"}
            return record.run.run_id, record.run.project, config
    raise AssertionError(f"{path} holds no run record")
