"""LeRobot datasets (v2.1 and v3.0, parquet + mp4) as demos: written here in both layouts, read back frame for
frame, trained on by SFT, seeded into RIPT contexts, and refused with the file and key named when damaged."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
av = pytest.importorskip("av")

from PIL import Image  # noqa: E402

from ript_fast.config import load_config  # noqa: E402
from ript_fast.data import ContextDataset, DemoFileError  # noqa: E402
from ript_fast.data.lerobot_dataset import read_lerobot_dataset  # noqa: E402
from ript_fast.data.sources import read_demos  # noqa: E402
from ript_fast.train.checkpoint import read_checkpoint_meta  # noqa: E402
from ript_fast.train.run_config import TrainConfig  # noqa: E402
from ript_fast.train.sft import SftConfig, run_sft  # noqa: E402
from ript_fast.train.stage2 import demo_context_dataset  # noqa: E402

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "sft_quest_smoke.yaml"
FPS = 10
SIZE = (24, 32)  # (height, width) of the test cameras


@dataclass
class Demo:
    """One episode as the test writes it: LeRobot feature name -> (T, ...) array, and its task text."""

    task: str
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features["action"])


def make_demos(lengths: list[int], tasks: list[str], sim_states: np.ndarray | None = None) -> list[Demo]:
    """Episodes with a smooth state, actions, a moving-gradient camera and a noise camera (known content)."""
    rng = np.random.default_rng(0)
    demos = []
    for i, (length, task) in enumerate(zip(lengths, tasks, strict=True)):
        t = np.linspace(0, 1, length, dtype=np.float32)[:, None]
        rows, cols = np.mgrid[: SIZE[0], : SIZE[1]]
        gradient = np.stack([(rows * 8 + cols * 4 + 9 * s + 40 * i) % 256 for s in range(length)]).astype(np.uint8)
        features = {
            "action": np.concatenate([np.sin(3 * t + i), np.cos(2 * t), t, -t], axis=1).astype(np.float32),
            "observation.state": np.concatenate(
                [np.full_like(t, i), t, t**2, t**3, np.sin(t), np.cos(t), -t, 1 - t], axis=1
            ),
            "observation.images.image": np.repeat(gradient[..., None], 3, axis=-1),
            "observation.images.wrist_image": rng.integers(0, 256, (length, *SIZE, 3), dtype=np.uint8),
        }
        if sim_states is not None:
            features["observation.sim_state"] = np.repeat(sim_states[i][None], length, axis=0)
        demos.append(Demo(task, features))
    return demos


def write_video(path: Path, frames: np.ndarray, lossless: bool = True) -> None:
    """An mp4 at FPS. Lossless: H.264 in RGB at qp 0 (libx264rgb), so every decoded pixel equals the written
    one and the reader's frame selection is checked exactly; lossy: LeRobot-like yuv420p at the default quality."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"} if lossless else {"preset": "ultrafast"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def png_cells(frames: np.ndarray) -> list[dict[str, object]]:
    """LeRobot's `image` dtype: each cell a struct of the encoded image's bytes and a path."""
    cells = []
    for image in frames:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": None})
    return cells


def feature_specs(demo: Demo, videos: list[str]) -> dict[str, dict[str, object]]:
    specs: dict[str, dict[str, object]] = {}
    for name, value in demo.features.items():
        if value.dtype == np.uint8:
            dtype = "video" if name in videos else "image"
            specs[name] = {"dtype": dtype, "shape": list(value.shape[1:]), "names": ["height", "width", "channels"]}
        else:
            specs[name] = {"dtype": str(value.dtype), "shape": list(value.shape[1:]), "names": None}
    for name in ("timestamp",):
        specs[name] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        specs[name] = {"dtype": "int64", "shape": [1], "names": None}
    return specs


def frame_table(demos: list[Demo], first_index: int, episode_ids: list[int], tasks: list[str], videos: list[str]):  # type: ignore[no-untyped-def]
    """The parquet rows of `demos`: numbers as lists, parquet images as PNG structs, per-frame bookkeeping."""
    columns: dict[str, list[object]] = {}
    index = first_index
    for demo, episode in zip(demos, episode_ids, strict=True):
        length = len(demo)
        for name, value in demo.features.items():
            if name not in videos:
                cells = png_cells(value) if value.dtype == np.uint8 else [row.tolist() for row in value]
                columns.setdefault(name, []).extend(cells)
        columns.setdefault("timestamp", []).extend((np.arange(length, dtype=np.float32) / FPS).tolist())
        columns.setdefault("frame_index", []).extend(range(length))
        columns.setdefault("episode_index", []).extend([episode] * length)
        columns.setdefault("index", []).extend(range(index, index + length))
        columns.setdefault("task_index", []).extend([tasks.index(demo.task)] * length)
        index += length
    types = {n: pa.list_(pa.float32()) for n in columns if n.startswith(("action", "observation.state"))}
    types |= {n: pa.list_(pa.float64()) for n in columns if n == "observation.sim_state"}
    types["timestamp"] = pa.float32()
    return pa.table({n: pa.array(v, type=types.get(n)) for n, v in columns.items()})


def info(demos: list[Demo], version: str, videos: list[str], tasks: list[str]) -> dict[str, object]:
    v2 = version.startswith("v2")
    return {
        "codebase_version": version,
        "robot_type": "panda",
        "total_episodes": len(demos),
        "total_frames": sum(map(len, demos)),
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "fps": FPS,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        if v2
        else "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        if v2
        else "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": feature_specs(demos[0], videos),
    }


def write_v21(root: Path, demos: list[Demo], videos: list[str], lossless: bool = True) -> Path:
    """LeRobotDataset v2.1: one parquet and one mp4 per camera for each episode, episodes and tasks as JSON lines."""
    tasks = list(dict.fromkeys(d.task for d in demos))
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info(demos, "v2.1", videos, tasks)))
    lines = [json.dumps({"episode_index": i, "tasks": [d.task], "length": len(d)}) for i, d in enumerate(demos)]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    (root / "meta" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks))
    )
    start = 0
    for i, demo in enumerate(demos):
        path = root / f"data/chunk-000/episode_{i:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(frame_table([demo], start, [i], tasks, videos), path)
        for key in videos:
            write_video(root / f"videos/chunk-000/{key}/episode_{i:06d}.mp4", demo.features[key], lossless)
        start += len(demo)
    return root


def write_v30(root: Path, demos: list[Demo], videos: list[str], lossless: bool = True) -> Path:
    """LeRobotDataset v3.0: every episode in one data file and one mp4 per camera, located by the episode
    rows of meta/episodes (data file, video file and the episode's start time in it)."""
    tasks = list(dict.fromkeys(d.task for d in demos))
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info(demos, "v3.0", videos, tasks)))
    pq.write_table(pa.table({"task_index": list(range(len(tasks))), "task": tasks}), root / "meta" / "tasks.parquet")
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(
        frame_table(demos, 0, list(range(len(demos))), tasks, videos), root / "data/chunk-000/file-000.parquet"
    )
    for key in videos:
        frames = np.concatenate([d.features[key] for d in demos])
        write_video(root / f"videos/{key}/chunk-000/file-000.mp4", frames, lossless)
    starts = np.cumsum([0] + [len(d) for d in demos])
    rows: dict[str, list[object]] = {
        "episode_index": list(range(len(demos))),
        "tasks": [[d.task] for d in demos],
        "length": [len(d) for d in demos],
        "data/chunk_index": [0] * len(demos),
        "data/file_index": [0] * len(demos),
        "dataset_from_index": starts[:-1].tolist(),
        "dataset_to_index": starts[1:].tolist(),
        "stats/action/mean": [d.features["action"].mean(0).tolist() for d in demos],
    }
    for key in videos:
        rows |= {
            f"videos/{key}/chunk_index": [0] * len(demos),
            f"videos/{key}/file_index": [0] * len(demos),
            f"videos/{key}/from_timestamp": (starts[:-1] / FPS).tolist(),
            f"videos/{key}/to_timestamp": (starts[1:] / FPS).tolist(),
        }
    pq.write_table(pa.table(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    return root


WRITERS = {"v2.1": write_v21, "v3.0": write_v30}
TASKS = ["put the bowl on the plate", "open the drawer", "put the bowl on the plate"]
CAMERAS = ["observation.images.image", "observation.images.wrist_image"]


@pytest.mark.parametrize("version", WRITERS)
def test_both_layouts_read_back_frame_for_frame(tmp_path: Path, version: str) -> None:
    demos = make_demos([7, 12, 9], TASKS)
    root = WRITERS[version](tmp_path / "ds", demos, videos=CAMERAS)
    sets = read_lerobot_dataset(root, ["state", "image", "wrist_image"])
    assert [(s.task_name, s.instruction) for s in sets] == [
        ("put_the_bowl_on_the_plate", "put the bowl on the plate"),
        ("open_the_drawer", "open the drawer"),
    ]
    by_task = [[demos[0], demos[2]], [demos[1]]]
    for demo_set, written in zip(sets, by_task, strict=True):
        assert demo_set.path == root and len(demo_set.episodes) == len(written)
        for episode, demo in zip(demo_set.episodes, written, strict=True):
            assert np.array_equal(episode.actions, demo.features["action"]) and episode.actions.dtype == np.float32
            assert np.array_equal(episode.obs["state"], demo.features["observation.state"])
            assert np.array_equal(episode.obs["image"], demo.features["observation.images.image"])  # lossless
            assert np.array_equal(episode.obs["wrist_image"], demo.features["observation.images.wrist_image"])
            assert episode.states.shape == (len(demo), 0)  # no sim states: contexts come from env resets
    assert [len(s.episodes) for s in read_lerobot_dataset(root, [], max_demos=1)] == [1, 1]


def test_lossy_video_decodes_within_codec_tolerance(tmp_path: Path) -> None:
    """LeRobot's own datasets are lossy (yuv420p): smooth content comes back within a few grey levels."""
    demos = make_demos([8, 6], TASKS[:2])
    root = write_v30(tmp_path / "ds", demos, videos=["observation.images.image"], lossless=False)
    episodes = [s.episodes[0] for s in read_lerobot_dataset(root, ["image"])]
    for episode, demo in zip(episodes, demos, strict=True):
        error = np.abs(episode.obs["image"].astype(int) - demo.features["observation.images.image"])
        assert error.mean() < 4, error.mean()


def test_images_stored_in_the_parquet_and_all_obs_keys(tmp_path: Path) -> None:
    """LeRobot's `image` dtype (PNG bytes in the parquet, as LIBERO's v2 datasets store frames) is exact; with
    no obs keys named, every observation.* feature is read, under its short name."""
    demos = make_demos([5, 4], TASKS[:2])
    root = write_v21(tmp_path / "ds", demos, videos=["observation.images.image"])
    episode = read_lerobot_dataset(root)[1].episodes[0]
    assert sorted(episode.obs) == ["image", "state", "wrist_image"]
    assert np.array_equal(episode.obs["wrist_image"], demos[1].features["observation.images.wrist_image"])


def test_lerobot_keys_map_our_keys_to_other_feature_names(tmp_path: Path) -> None:
    demos = make_demos([5], TASKS[:1])
    root = write_v30(tmp_path / "ds", demos, videos=CAMERAS)
    keys = {"agentview_rgb": "observation.images.image", "proprio": "observation.state"}
    episode = read_demos(root, ["proprio", "agentview_rgb"], lerobot_keys=keys)[0].episodes[0]
    assert np.array_equal(episode.obs["agentview_rgb"], demos[0].features["observation.images.image"])
    assert np.array_equal(episode.obs["proprio"], demos[0].features["observation.state"])
    with pytest.raises(DemoFileError, match=r"info\.json: no feature for obs key 'agentview_rgb'"):
        read_demos(root, ["agentview_rgb"])


def test_sft_trains_on_a_lerobot_dataset(tmp_path: Path) -> None:
    """A few steps of the smoke QueST preset on a v3.0 folder, reading its state and one camera."""
    root = write_v30(tmp_path / "ds", make_demos([30, 30, 30], TASKS), videos=CAMERAS)
    overrides = [
        f"demos=[{root}]",
        "policy.obs.image_keys=[image]",
        "policy.obs.image_size=16",
        "policy.obs.image_embed_dim=8",
        "stages=[{name: autoencoder, steps: 3, batch_size: 8}, {name: prior, steps: 3, batch_size: 8}]",
    ]
    checkpoint = run_sft(load_config(SftConfig, SMOKE, overrides), tmp_path / "run")
    meta = read_checkpoint_meta(checkpoint)
    assert meta["spec"]["task_names"] == ["put_the_bowl_on_the_plate", "open_the_drawer"]
    assert meta["spec"]["action_dim"] == 4 and meta["spec"]["state_dim"] == 8
    assert meta["notes"]["num_episodes"] == 3 and meta["notes"]["num_samples"] == 90


@pytest.mark.parametrize("version", WRITERS)
def test_contexts_are_seeded_from_sim_states(tmp_path: Path, version: str, reach_contexts: np.ndarray) -> None:
    """A dataset with `observation.sim_state` gives RIPT its contexts (states[0] of each episode), through the
    same path `ript-fast train` takes with contexts.source=demos; one without is refused naming the dataset."""
    root = WRITERS[version](tmp_path / "ds", make_demos([6, 5], ["reach-v3"] * 2, reach_contexts), videos=[])
    cfg = load_config(TrainConfig, None, [f"demos.files=[{root}]", "demos.num_demos=2"])
    contexts = demo_context_dataset(cfg, tmp_path / "run")
    assert contexts.task_names == ["reach-v3", "reach-v3"] and len(contexts) == 2
    assert np.array_equal(np.stack(contexts.states), reach_contexts)
    bare = write_v21(tmp_path / "bare", make_demos([4], ["reach-v3"]), videos=[])
    with pytest.raises(DemoFileError, match=r"bare: episode 0/states is absent"):
        ContextDataset.from_demos(read_demos(bare, []))


def test_cut_short_sim_state_is_refused(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    root = write_v30(tmp_path / "ds", make_demos([4], ["reach-v3"], reach_contexts[:, :-3]), videos=[])
    with pytest.raises(DemoFileError, match=r"file-000\.parquet: column 'observation\.sim_state' of episode 0, step 0"):
        read_lerobot_dataset(root, [])


def rewrite_parquet(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    pq.write_table(edit(pq.read_table(path)), path)


def test_missing_info_json_is_refused(tmp_path: Path) -> None:
    root = write_v21(tmp_path / "ds", make_demos([4], TASKS[:1]), videos=[])
    (root / "meta" / "info.json").unlink()
    with pytest.raises(DemoFileError, match=r"ds/meta/info\.json: missing \(not a LeRobot dataset"):
        read_demos(root, ["state"])


def test_parquet_missing_a_column_is_refused(tmp_path: Path) -> None:
    root = write_v30(tmp_path / "ds", make_demos([4, 5], TASKS[:2]), videos=[])
    rewrite_parquet(root / "data/chunk-000/file-000.parquet", lambda t: t.drop_columns(["observation.state"]))
    with pytest.raises(DemoFileError, match=r"file-000\.parquet: missing column 'observation\.state'"):
        read_lerobot_dataset(root, ["state"])


def test_episode_index_mismatch_is_refused(tmp_path: Path) -> None:
    root = write_v21(tmp_path / "ds", make_demos([4, 5], TASKS[:2]), videos=[])
    path = root / "data/chunk-000/episode_000001.parquet"

    def relabel(table):  # type: ignore[no-untyped-def]
        return table.set_column(
            table.schema.get_field_index("episode_index"), "episode_index", pa.array([1, 1, 0, 1, 1])
        )

    rewrite_parquet(path, relabel)
    with pytest.raises(
        DemoFileError, match=r"episode_000001\.parquet: column 'episode_index' holds 0 in the file of episode 1"
    ):
        read_lerobot_dataset(root, [])
    v3 = write_v30(tmp_path / "v3", make_demos([4, 5], TASKS[:2]), videos=[])
    rewrite_parquet(v3 / "data/chunk-000/file-000.parquet", lambda t: t.slice(0, 8))
    with pytest.raises(
        DemoFileError, match=r"file-000\.parquet: episode 1 has 4 rows \(column 'episode_index'\), its length is 5"
    ):
        read_lerobot_dataset(v3, [])


@pytest.mark.parametrize("version", WRITERS)
def test_video_shorter_than_its_episode_is_refused(tmp_path: Path, version: str) -> None:
    demos = make_demos([6, 8], TASKS[:2])
    root = WRITERS[version](tmp_path / "ds", demos, videos=["observation.images.image"])
    video = (
        next((root / "videos").rglob("*.mp4"))
        if version == "v3.0"
        else root / "videos/chunk-000/observation.images.image/episode_000001.mp4"
    )
    frames = (
        np.concatenate([d.features["observation.images.image"] for d in demos])
        if version == "v3.0"
        else demos[1].features["observation.images.image"]
    )
    write_video(video, frames[:-2])
    with pytest.raises(
        DemoFileError, match=r"\.mp4: observation\.images\.image of episode 1: no frame at .* the video is shorter"
    ):
        read_lerobot_dataset(root, ["image"])


def test_non_finite_actions_and_bad_values_are_refused(tmp_path: Path) -> None:
    demos = make_demos([4, 5], TASKS[:2])
    demos[1].features["action"][3, 2] = np.nan
    root = write_v30(tmp_path / "ds", demos, videos=[])
    with pytest.raises(DemoFileError, match=r"file-000\.parquet: column 'action' of episode 1 holds nan at step 3"):
        read_lerobot_dataset(root, [])
    info_path = root / "meta" / "info.json"
    meta = json.loads(info_path.read_text())
    meta["features"]["observation.state"]["shape"] = [7]
    info_path.write_text(json.dumps(meta))
    with pytest.raises(
        DemoFileError,
        match=r"column 'observation\.state' of episode 0 has per-step shape \(8,\), info\.json declares \[7\]",
    ):
        read_lerobot_dataset(root, ["state"])
    meta["codebase_version"] = "v1.6"
    info_path.write_text(json.dumps(meta))
    with pytest.raises(DemoFileError, match=r"info\.json: codebase_version 'v1\.6'"):
        read_lerobot_dataset(root, [])


def test_missing_extra_and_foreign_path_patterns_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_v30(tmp_path / "ds", make_demos([4], TASKS[:1]), videos=[])
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
        with pytest.raises(
            DemoFileError, match=r"ds: reading a LeRobot dataset needs pyarrow and av .* ript-fast\[lerobot\]"
        ):
            read_demos(root, [])
    info_path = root / "meta" / "info.json"
    meta = json.loads(info_path.read_text())
    meta["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"  # a v2 pattern
    info_path.write_text(json.dumps(meta))
    with pytest.raises(DemoFileError, match=r"info\.json: data_path .* does not fit v3\.0"):
        read_demos(root, [])


def test_tasks_are_named_as_the_benchmark_names_them(tmp_path: Path) -> None:
    """Given the benchmark, each task text (any case, spacing or final period) becomes the env's task name and
    single-task env name; a text the benchmark lacks is one line naming it and the closest instructions."""
    texts = ["Reach the goal position.", "push the  puck to the goal", "Reach the goal position."]
    root = write_v30(tmp_path / "ds", make_demos([5, 5, 5], texts), videos=[])
    sets = read_demos(root, ["state"], benchmark="metaworld/MT50")
    assert [(s.task_name, s.env_name, len(s.episodes)) for s in sets] == [
        ("reach-v3", "metaworld/reach-v3", 2),
        ("push-v3", "metaworld/push-v3", 1),
    ]
    assert [s.task_name for s in read_demos(root, ["state"])] == [
        "Reach_the_goal_position.",
        "push_the__puck_to_the_goal",
    ]
    other = write_v30(tmp_path / "other", make_demos([5], ["push the puck to the gaol"]), videos=[])
    closest = r"\(closest: 'push the puck to the goal'"
    with pytest.raises(
        DemoFileError, match=rf"task 'push the puck to the gaol' is no task of metaworld/MT50 {closest}"
    ):
        read_demos(other, ["state"], benchmark="metaworld/MT50")


def test_libero_tasks_get_their_suite_names(tmp_path: Path) -> None:
    """LIBERO's LeRobot datasets name tasks by their instruction: read for libero/goal they are the suite's tasks,
    as its envs (and so a RIPT run on libero/goal) name them."""
    pytest.importorskip("libero")
    from ript_fast.envs.registry import task_instructions

    instructions = task_instructions("libero/goal")
    wanted = ["goal/open_the_middle_drawer_of_the_cabinet", "goal/put_the_bowl_on_the_stove"]
    root = write_v30(tmp_path / "ds", make_demos([5, 5], [instructions[t] for t in wanted]), videos=[])
    sets = read_demos(root, ["state"], benchmark="libero/goal")
    assert [(s.task_name, s.env_name) for s in sets] == [(t, f"libero/{t}") for t in wanted]
