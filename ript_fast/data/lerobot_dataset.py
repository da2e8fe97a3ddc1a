"""LeRobot datasets (LeRobotDataset v2.0/v2.1 and v3.0: parquet + mp4) as demonstrations, for SFT and RIPT contexts.

The LIBERO and MetaWorld demonstrations people download today are LeRobot datasets. They are read here from
their documented on-disk layout with pyarrow and PyAV (`pip install "ript-fast[lerobot]"`), not through the
`lerobot` package: lerobot 0.4.4 requires torch<2.11, so installing it would replace the torch build this
package is installed on (`pip install --dry-run lerobot` beside torch 2.13 pulls torch 2.10 and CUDA wheels).

Layouts (`meta/info.json`'s `codebase_version` says which):

    v2.0 / v2.1  meta/info.json       fps, features, chunks_size, data_path, video_path (format strings)
                 meta/episodes.jsonl  one line per episode: episode_index, tasks (strings), length
                 data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet       one episode a file
                 videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
    v3.0         meta/info.json       as above, with data_path/video_path over chunk_index and file_index
                 meta/episodes/chunk-XXX/file-XXX.parquet   a row per episode: episode_index, tasks, length,
                                      data/chunk_index, data/file_index, videos/<key>/chunk_index, file_index,
                                      from_timestamp (where the episode starts in that mp4)
                 data/chunk-XXX/file-XXX.parquet           many episodes a file (rows by episode_index)
                 videos/<key>/chunk-XXX/file-XXX.mp4       many episodes a file

A frame is a parquet row: `action`, `observation.*` features (lists of numbers; images either in the parquet,
dtype `image`: PNG/JPEG bytes, or in the mp4s, dtype `video`), `timestamp`, `episode_index`. Video frames are
matched to rows by time (the row's `timestamp`, plus the episode's `from_timestamp` in v3.0), as LeRobot does.

What becomes what: `action` -> `Episode.actions`; an obs key `k` a policy names (`obs.state_keys`,
`obs.image_keys`) is the feature `k`, else `observation.k`, else `observation.images.k` (so `state` reads
LIBERO's 8-d `observation.state`, `image` / `wrist_image` its two cameras), unless `lerobot_keys` maps it to
another feature name; `lerobot_keys` may also rename `actions`. Episodes are grouped by their task (the first
of the episode's `tasks`): one `DemoSet` per task, its instruction the task text and its task name the text
with underscores for spaces. Initial states for RIPT contexts come from the feature `observation.sim_state`
(or what `lerobot_keys["states"]` names): the env state before each step, `states[0]` being the episode's
context, as in our HDF5 files. LeRobot's published datasets carry none: their contexts come from env resets
(`contexts.source: env`), and asking for demo contexts from them is refused naming the dataset.

Every problem is one `DemoFileError` naming the file and the key, raised before anything trains: a missing or
unreadable info.json, episode list or parquet file, an unsupported codebase_version, a column the features
declare but a parquet lacks, a feature that does not exist, values of another shape than declared or not
numbers, NaN/inf, an episode whose rows disagree with its index or length, and a video that cannot be read,
has frames of another size, or ends before its episode does. Reading runs no code from the dataset.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ript_fast.data.demo_file import NUMERIC_KINDS, DemoFileError, DemoSet, Episode, check_finite, check_stored_context

if TYPE_CHECKING:
    import pyarrow as pa

INFO_FILE = "meta/info.json"
ACTION_FEATURE = "action"
STATES_FEATURE = "observation.sim_state"  # our convention: the env state before each step (RIPT contexts)
OBS_PREFIXES = ("", "observation.", "observation.images.")  # where an obs key is looked up, in this order
V2_VERSIONS = ("v2.0", "v2.1")
V3_VERSION = "v3.0"
FRAME_TOLERANCE = 0.4  # of a frame period: how far a decoded frame's time may be from the row it belongs to


@dataclass
class _EpisodeRef:
    """Where one episode's frames are: its parquet file (and, for each video key, its mp4 and start time)."""

    index: int
    length: int
    task: str
    data_file: Path
    whole_file: bool  # v2: the file holds this episode alone (v3: many episodes, told apart by episode_index)
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)


@dataclass
class _Dataset:
    """A dataset's info.json, read and checked, and the files it points to."""

    root: Path
    version: str
    fps: float
    features: dict[str, dict[str, Any]]
    info: dict[str, Any]

    def video_keys(self) -> list[str]:
        return [name for name, spec in self.features.items() if spec.get("dtype") == "video"]

    def file(self, pattern: str, **fields: object) -> Path:
        """The file info.json's `pattern` (data_path / video_path) names for these fields; a pattern with
        other placeholders than the version's is refused naming it."""
        try:
            return self.root / self.info[pattern].format(**fields)
        except (KeyError, IndexError, ValueError) as err:
            text = f"{pattern} {self.info[pattern]!r} does not fit {self.version} ({err!r})"
            raise _error(self.root / INFO_FILE, text) from None


def read_lerobot_dataset(
    root: str | Path,
    obs_keys: list[str] | None = None,
    max_demos: int | None = None,
    lerobot_keys: Mapping[str, str] | None = None,
) -> list[DemoSet]:
    """The dataset's episodes as one DemoSet per task (the first `max_demos` episodes of each task), with the
    obs keys asked for (None: every `observation.*` feature), validated."""
    dataset = _read_info(Path(root))
    _require_extra(dataset.root)
    names = _feature_names(dataset, obs_keys, dict(lerobot_keys or {}))
    refs = _episode_refs(dataset)
    by_task: dict[str, list[_EpisodeRef]] = {}
    for ref in refs:
        by_task.setdefault(ref.task, []).append(ref)
    wanted = {ref.index for task_refs in by_task.values() for ref in task_refs[:max_demos]}
    chosen = [ref for ref in refs if ref.index in wanted]  # in file order: a v3 file is read once for all its own
    episodes = dict(zip([r.index for r in chosen], _read_episodes(dataset, chosen, names), strict=True))
    return [
        DemoSet(
            dataset.root,
            "",
            task.replace(" ", "_"),
            task,
            [episodes[r.index] for r in task_refs[:max_demos]],
            {"lerobot": dataset.info},
        )
        for task, task_refs in by_task.items()
    ]


def _require_extra(root: Path) -> None:
    """pyarrow and PyAV are an optional extra: without them, one line says how to get them."""
    try:
        import av  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise _error(
            root, f"reading a LeRobot dataset needs pyarrow and av ({err}): pip install ript-fast[lerobot]"
        ) from None


def _error(path: Path, message: str) -> DemoFileError:
    return DemoFileError(f"{path}: {message}")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise _error(path, "missing (not a LeRobot dataset, or an incomplete copy of one)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _error(path, f"not valid JSON ({err})") from None


def _read_info(root: Path) -> _Dataset:
    """info.json: its version, fps and features, each checked (they say how to read everything else)."""
    path = root / INFO_FILE
    info = _read_json(path)
    if not isinstance(info, dict):
        raise _error(path, "must hold a JSON object")
    version = info.get("codebase_version")
    if version not in (*V2_VERSIONS, V3_VERSION):
        raise _error(path, f"codebase_version {version!r}: this reader knows {', '.join((*V2_VERSIONS, V3_VERSION))}")
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or not fps > 0:
        raise _error(path, f"fps must be a positive number, found {fps!r}")
    features = info.get("features")
    if not isinstance(features, dict) or not all(isinstance(spec, dict) for spec in features.values()):
        raise _error(path, "features must map each feature name to its {dtype, shape}")
    for key in ("data_path", *(("video_path",) if any(s.get("dtype") == "video" for s in features.values()) else ())):
        if not isinstance(info.get(key), str):
            raise _error(path, f"{key} must be a path pattern, found {info.get(key)!r}")
    return _Dataset(root, version, float(fps), features, info)


def _feature_names(dataset: _Dataset, obs_keys: list[str] | None, mapped: dict[str, str]) -> dict[str, str]:
    """Our key -> the dataset's feature name, for `actions`, `states` (when present) and the obs keys."""
    features = dataset.features
    if obs_keys is None:
        names = [n for n in features if n.startswith("observation.") and n != mapped.get("states", STATES_FEATURE)]
        obs_keys = [n.removeprefix("observation.images.").removeprefix("observation.") for n in names]
    out = {"actions": mapped.get("actions", ACTION_FEATURE)}
    states = mapped.get("states", STATES_FEATURE)
    if states in features:
        out["states"] = states
    elif "states" in mapped:
        raise _error(dataset.root / INFO_FILE, f"no feature {states!r} (lerobot_keys maps states to it)")
    for key in obs_keys:
        out[f"obs/{key}"] = _obs_feature(dataset, key, mapped)
    if out["actions"] not in features:
        raise _error(dataset.root / INFO_FILE, f"no feature {out['actions']!r} (the actions); has {sorted(features)}")
    return out


def _obs_feature(dataset: _Dataset, key: str, mapped: dict[str, str]) -> str:
    """The feature an obs key reads: as mapped, else the first of `key`, `observation.key`,
    `observation.images.key` that exists; a key that finds none is refused listing what the dataset has."""
    candidates = [mapped[key]] if key in mapped else [prefix + key for prefix in OBS_PREFIXES]
    for name in candidates:
        if name in dataset.features:
            return name
    raise _error(
        dataset.root / INFO_FILE,
        f"no feature for obs key {key!r} (looked for {', '.join(candidates)}); features: {sorted(dataset.features)}",
    )


def _episode_refs(dataset: _Dataset) -> list[_EpisodeRef]:
    rows = _v2_episode_rows(dataset) if dataset.version in V2_VERSIONS else _v3_episode_rows(dataset)
    if not rows:
        raise _error(dataset.root / "meta", "lists no episodes")
    refs, seen = [], set()
    for row, where in rows:
        refs.append(_episode_ref(dataset, row, where))
        if refs[-1].index in seen:
            raise DemoFileError(f"{where}: episode {refs[-1].index} is listed twice")
        seen.add(refs[-1].index)
    return refs


def _v2_episode_rows(dataset: _Dataset) -> list[tuple[dict[str, Any], str]]:
    path = dataset.root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise _error(path, "missing (a v2 dataset lists its episodes there)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append((json.loads(line), f"{path}: line {number}"))
            except json.JSONDecodeError as err:
                raise _error(path, f"line {number} is not valid JSON ({err})") from None
    return rows


def _v3_episode_rows(dataset: _Dataset) -> list[tuple[dict[str, Any], str]]:
    folder = dataset.root / "meta" / "episodes"
    files = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not files:
        raise _error(folder, "holds no chunk-XXX/file-XXX.parquet (a v3.0 dataset lists its episodes there)")
    rows = []
    for path in files:
        table = _read_parquet(path, None)
        for number, row in enumerate(table.drop_columns(_stats_columns(table)).to_pylist()):
            rows.append((row, f"{path}: row {number}"))
    return rows


def _stats_columns(table: pa.Table) -> list[str]:
    """Per-episode statistics (LeRobot's stats/*): not needed to read episodes."""
    return [name for name in table.column_names if name.startswith("stats/")]


def _episode_ref(dataset: _Dataset, row: dict[str, Any], where: str) -> _EpisodeRef:
    """Where an episode list row says the episode's frames are, each field checked."""
    index, length = _int_field(row, "episode_index", where), _int_field(row, "length", where)
    tasks = row.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise DemoFileError(f"{where}: tasks must be a non-empty list of task texts, found {tasks!r}")
    if length < 1:
        raise DemoFileError(f"{where}: episode {index} has length {length}")
    if dataset.version in V2_VERSIONS:
        chunk = index // _chunks_size(dataset)
        data = dataset.file("data_path", episode_chunk=chunk, episode_index=index)
        videos = {
            key: (dataset.file("video_path", episode_chunk=chunk, video_key=key, episode_index=index), 0.0)
            for key in dataset.video_keys()
        }
    else:
        chunk, file = _int_field(row, "data/chunk_index", where), _int_field(row, "data/file_index", where)
        data = dataset.file("data_path", chunk_index=chunk, file_index=file)
        videos = {key: _v3_video(dataset, row, key, where) for key in dataset.video_keys()}
    return _EpisodeRef(index, length, tasks[0], data, dataset.version in V2_VERSIONS, videos)


def _v3_video(dataset: _Dataset, row: dict[str, Any], key: str, where: str) -> tuple[Path, float]:
    """A v3 episode's mp4 for camera `key` and the time at which the episode starts in it."""
    chunk = _int_field(row, f"videos/{key}/chunk_index", where)
    file = _int_field(row, f"videos/{key}/file_index", where)
    start = row.get(f"videos/{key}/from_timestamp")
    if not isinstance(start, (int, float)) or not np.isfinite(start) or start < 0:
        raise DemoFileError(f"{where}: videos/{key}/from_timestamp must be a time >= 0, found {start!r}")
    return dataset.file("video_path", video_key=key, chunk_index=chunk, file_index=file), float(start)


def _chunks_size(dataset: _Dataset) -> int:
    size = dataset.info.get("chunks_size", 1000)
    if not isinstance(size, int) or size < 1:
        raise _error(dataset.root / INFO_FILE, f"chunks_size must be a positive integer, found {size!r}")
    return size


def _int_field(row: dict[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DemoFileError(f"{where}: {key} must be an integer, found {value!r}")
    return value


def _read_parquet(path: Path, columns: list[str] | None) -> pa.Table:
    """The table (only `columns`, each of which must be there), or one error naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise _error(path, "missing")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in columns or [] if c not in names]
        if missing:
            raise _error(path, f"missing column {missing[0]!r} (its columns: {names})")
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise _error(path, f"not a readable parquet file ({err})") from None


def _read_episodes(dataset: _Dataset, refs: list[_EpisodeRef], names: dict[str, str]) -> Iterator[Episode]:
    """Each episode of `refs` in order; each parquet file is read once, however many episodes it holds."""
    parquet_names = {key: name for key, name in names.items() if dataset.features[name].get("dtype") != "video"}
    columns = list(dict.fromkeys([*parquet_names.values(), "episode_index", "timestamp"]))
    table_file, table = None, None  # the last file read: a v3 file's episodes come one after another
    for ref in refs:
        if ref.data_file != table_file:
            table_file, table = ref.data_file, _read_parquet(ref.data_file, columns)
        rows = _episode_rows(table, ref)
        arrays = {key: _feature_array(rows, name, dataset, ref) for key, name in parquet_names.items()}
        timestamps = _column(rows, "timestamp", ref.data_file, ref).astype(np.float64)
        for key, name in names.items():
            if key not in arrays:
                video, start = ref.videos[name]
                arrays[key] = _decode_video(video, start + timestamps, dataset, name, ref)
        yield _episode(arrays, ref, names)


def _episode_rows(table: pa.Table, ref: _EpisodeRef) -> pa.Table:
    """The episode's rows: those of its episode_index (in file order, as LeRobot writes them), as many as its
    length; a v2 file must hold no other episode's rows."""
    import pyarrow.compute as pc

    rows = table.filter(pc.equal(_checked(table, "episode_index", ref), ref.index))
    if ref.whole_file and len(rows) != len(table):
        index = _column(table, "episode_index", ref.data_file, ref)
        other = int(index[index != ref.index][0])
        raise _error(ref.data_file, f"column 'episode_index' holds {other} in the file of episode {ref.index}")
    if len(rows) != ref.length:
        raise _error(
            ref.data_file,
            f"episode {ref.index} has {len(rows)} rows (column 'episode_index'), its length is {ref.length}",
        )
    return rows


def _checked(table: pa.Table, name: str, ref: _EpisodeRef) -> pa.ChunkedArray:
    """An integer bookkeeping column as it is, refused naming file and column when it is not one."""
    import pyarrow as pa

    if not pa.types.is_integer(table[name].type):
        raise _error(ref.data_file, f"column {name!r} has type {table[name].type}; expected integers")
    return table[name]


def _column(table: pa.Table, name: str, path: Path, ref: _EpisodeRef) -> np.ndarray:
    """A numeric column as (T, ...): a scalar column as (T,), a (nested) list column as (T, n, ...), refused
    naming file, column and episode when it holds nulls, lists of unequal lengths or something not numeric."""
    import pyarrow as pa
    import pyarrow.compute as pc

    where = f"column {name!r} of episode {ref.index}"
    array = table[name].combine_chunks()
    sizes: list[int] = []
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            raise _error(path, f"{where} has missing values")
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise _error(path, f"{where} holds lists of lengths {sorted(set(lengths.tolist()))}; expected one length")
        sizes.append(int(lengths[0]) if len(lengths) else 0)
        array = array.flatten()
    if array.null_count:
        raise _error(path, f"{where} has missing values")
    values = array.to_numpy(zero_copy_only=False) if pa.types.is_primitive(array.type) else None
    if values is None or values.dtype.kind not in NUMERIC_KINDS:
        raise _error(path, f"{where} has type {table[name].type}; expected numbers or lists of numbers")
    return values.reshape(len(table), *sizes)


def _feature_array(rows: pa.Table, name: str, dataset: _Dataset, ref: _EpisodeRef) -> np.ndarray:
    """A feature stored in the parquet: numbers of its declared shape, or encoded images (dtype `image`)."""
    spec = dataset.features[name]
    if spec.get("dtype") == "image":
        return _decode_images(rows, name, dataset, ref)
    values = _column(rows, name, ref.data_file, ref)
    shape = tuple(spec.get("shape") or ())
    if shape and int(np.prod(shape)) != int(np.prod(values.shape[1:])):
        raise _error(
            ref.data_file,
            f"column {name!r} of episode {ref.index} has per-step shape {values.shape[1:]}, "
            f"info.json declares {list(shape)}",
        )
    values = values.reshape(len(rows), *shape) if shape and shape != (1,) else values.reshape(len(rows), -1)
    return values


def _image_size(spec: dict[str, Any]) -> tuple[int, int] | None:
    """(height, width) a camera feature declares (LeRobot writes (H, W, 3) or (3, H, W))."""
    shape = list(spec.get("shape") or [])
    if len(shape) != 3:
        return None
    return (shape[0], shape[1]) if shape[2] == 3 else (shape[1], shape[2])


def _check_frame_size(frames: np.ndarray, spec: dict[str, Any], path: Path, where: str) -> None:
    size = _image_size(spec)
    if size is not None and frames.shape[1:3] != size:
        raise _error(
            path, f"{where} has {frames.shape[2]}x{frames.shape[1]} frames, info.json declares {size[1]}x{size[0]}"
        )


def _decode_images(rows: pa.Table, name: str, dataset: _Dataset, ref: _EpisodeRef) -> np.ndarray:
    """Images stored in the parquet (LeRobot's `image` dtype: a struct of encoded `bytes` and a `path`)."""
    from PIL import Image, UnidentifiedImageError

    where = f"column {name!r} of episode {ref.index}"
    cells = rows[name].to_pylist()
    frames = []
    for step, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise _error(ref.data_file, f"{where} step {step} holds no image bytes (found {type(cell).__name__})")
        try:
            frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise _error(ref.data_file, f"{where} step {step} is not a readable image ({err})") from None
    if len({f.shape for f in frames}) != 1:
        raise _error(ref.data_file, f"{where} holds images of sizes {sorted({f.shape[:2] for f in frames})}")
    out = np.stack(frames)
    _check_frame_size(out, dataset.features[name], ref.data_file, where)
    return out


def _decode_video(path: Path, times: np.ndarray, dataset: _Dataset, name: str, ref: _EpisodeRef) -> np.ndarray:
    """The frames shown at `times` (seconds), as (T, H, W, 3) uint8 RGB: the stream is sought to the first,
    decoded to the last, and each time takes the decoded frame nearest it, which must lie within
    FRAME_TOLERANCE of a frame period (else the video does not cover the episode: refused)."""
    import av

    where = f"{name} of episode {ref.index}"
    tolerance = FRAME_TOLERANCE / dataset.fps
    stamps, frames = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _error(path, f"{where}: the file has no video stream")
            stream = container.streams.video[0]
            start = max(float(times[0]) - tolerance, 0.0)
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start:
                    continue
                if frame.time > times[-1] + tolerance:
                    break
                stamps.append(frame.time)
                frames.append(frame.to_ndarray(format="rgb24"))
    except FileNotFoundError:
        raise _error(path, f"missing (the video of {where})") from None
    except av.error.FFmpegError as err:
        raise _error(path, f"{where}: not a readable video ({err})") from None
    return _frames_at(np.asarray(stamps), frames, times, tolerance, path, where, dataset.features[name])


def _frames_at(
    stamps: np.ndarray,
    frames: list[np.ndarray],
    times: np.ndarray,
    tolerance: float,
    path: Path,
    where: str,
    spec: dict[str, Any],
) -> np.ndarray:
    """For each of `times`, the frame whose time stamp is nearest; a time with none within `tolerance` is
    refused (a video shorter than its episode, or frames missing in the middle)."""
    if len(stamps) == 0:
        raise _error(path, f"{where}: no frame from {times[0]:.3f} s on; the episode needs {len(times)} frames")
    after = (
        np.clip(np.searchsorted(stamps, times), 1, len(stamps) - 1) if len(stamps) > 1 else np.zeros(len(times), int)
    )
    before = np.maximum(after - 1, 0)
    nearest = np.where(np.abs(stamps[before] - times) <= np.abs(stamps[after] - times), before, after)
    gap = np.abs(stamps[nearest] - times)
    if (gap > tolerance).any():
        step = int(np.argmax(gap > tolerance))
        raise _error(
            path,
            f"{where}: no frame at {times[step]:.3f} s (step {step} of {len(times)}; frames decoded from "
            f"{stamps[0]:.3f} s to {stamps[-1]:.3f} s): the video is shorter than its episode or misses frames",
        )
    out = np.stack([frames[i] for i in nearest])
    _check_frame_size(out, spec, path, where)
    return out


def _episode(arrays: dict[str, np.ndarray], ref: _EpisodeRef, names: dict[str, str]) -> Episode:
    """Our Episode, in the dtypes training reads, checked as the HDF5 reader checks one (NaN/inf, as cast;
    `states[0]`, when the dataset has states, as a stored context)."""
    length = ref.length
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below, as trained
        arrays["actions"] = arrays["actions"].reshape(length, -1).astype(np.float32)
    arrays["states"] = arrays.get("states", np.zeros((length, 0))).reshape(length, -1).astype(np.float64)
    for key, value in arrays.items():
        check_finite(value, f"column {names.get(key, key)!r} of episode {ref.index}", ref.data_file)
    actions, states = arrays.pop("actions"), arrays.pop("states")
    if states.shape[1]:
        check_stored_context(states[0], f"{ref.data_file}: column {names['states']!r} of episode {ref.index}, step 0")
    obs = {key.removeprefix("obs/"): value for key, value in arrays.items()}
    return Episode(
        actions, obs, states, np.zeros(length, np.float32), np.zeros(length, np.uint8), f"episode {ref.index}"
    )
