"""Demo HDF5 files: the written schema, LIBERO/robomimic files, and clear errors for damaged files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ript_fast.data import ChunkDataset, ContextDataset, DemoFileError, Episode, read_demo_file, write_demo_file


def episode(length: int, seed: int = 0, state_dim: int = 39) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        actions=rng.uniform(-1, 1, (length, 4)).astype(np.float32),
        obs={"state": rng.normal(size=(length, state_dim)).astype(np.float32)},
        states=rng.normal(size=(length, 12)),
        rewards=np.eye(length, dtype=np.float32)[-1],
        dones=np.eye(length, dtype=np.uint8)[-1],
    )


def test_written_file_has_the_robomimic_layout(tmp_path: Path) -> None:
    eps = [episode(5, 0), episode(7, 1)]
    path = write_demo_file(tmp_path / "d.hdf5", eps, "metaworld/reach-v3", "reach-v3", "reach the goal", {"noise": 0.2})
    with h5py.File(path, "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        assert int(data.attrs["total"]) == 12
        assert json.loads(data.attrs["env_args"])["env_name"] == "metaworld/reach-v3"
        assert json.loads(data.attrs["problem_info"])["language_instruction"] == "reach the goal"
        assert json.loads(data.attrs["ript_fast"]) == {"noise": 0.2}
        demo = data["demo_1"]
        assert int(demo.attrs["num_samples"]) == 7
        assert demo["actions"].shape == (7, 4) and demo["actions"].dtype == np.float32
        assert demo["obs/state"].shape == (7, 39)
        assert demo["states"].shape == (7, 12) and demo["states"].dtype == np.float64
        assert demo["rewards"].shape == (7,) and demo["dones"][-1] == 1
    back = read_demo_file(path)
    assert (back.env_name, back.task_name, back.instruction) == ("metaworld/reach-v3", "reach-v3", "reach the goal")
    assert np.array_equal(back.episodes[1].actions, eps[1].actions)
    assert np.array_equal(back.episodes[0].states[0], eps[0].states[0])
    assert len(read_demo_file(path, max_demos=1).episodes) == 1


def test_no_temp_file_is_left_when_writing_fails(tmp_path: Path) -> None:
    bad = episode(3)
    bad.obs = {"state": np.zeros((3, 39), dtype=object)}  # h5py cannot store object arrays
    with pytest.raises(TypeError):
        write_demo_file(tmp_path / "d.hdf5", [bad], "metaworld/reach-v3", "reach-v3", "reach")
    assert list(tmp_path.iterdir()) == []


def make_libero_file(path: Path, instruction: object = "put the bowl on the plate") -> Path:
    """A file shaped like LIBERO's released datasets (keys, attrs, image obs), tiny."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Libero_Tabletop_Manipulation", "type": 1})
        data.attrs["problem_info"] = json.dumps(
            {"problem_name": "libero_tabletop_manipulation", "language_instruction": instruction}
        )
        data.attrs["bddl_file_name"] = "x.bddl"
        for i, t in enumerate([6, 4]):
            d = data.create_group(f"demo_{i}")
            d.attrs["num_samples"] = t
            d["actions"] = rng.uniform(-1, 1, (t, 7))
            d["states"] = rng.normal(size=(t, 92))
            d["robot_states"] = rng.normal(size=(t, 9))
            d["rewards"] = np.zeros(t)
            d["dones"] = np.zeros(t, dtype=np.uint8)
            d["obs/agentview_rgb"] = rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8)
            d["obs/eye_in_hand_rgb"] = rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8)
            d["obs/joint_states"] = rng.normal(size=(t, 7))
            d["obs/ee_pos"] = rng.normal(size=(t, 3))
            d["obs/gripper_states"] = rng.normal(size=(t, 2))
    return path


def test_libero_files_load_with_the_same_reader(tmp_path: Path) -> None:
    path = make_libero_file(tmp_path / "KITCHEN_SCENE1_put_the_bowl_on_the_plate_demo.hdf5")
    keys = ["joint_states", "ee_pos", "gripper_states", "agentview_rgb", "eye_in_hand_rgb"]
    demos = read_demo_file(path, obs_keys=keys)
    assert demos.instruction == "put the bowl on the plate"
    assert demos.task_name == "libero_tabletop_manipulation"
    assert demos.episodes[0].obs["agentview_rgb"].dtype == np.uint8
    data = ChunkDataset([demos], chunk_size=4, state_keys=keys[:3], image_keys=keys[3:])
    assert data.spec.state_dim == 12 and data.spec.action_dim == 7
    batch = data.batch(torch.tensor([0, 9]))
    assert batch.obs.images["eye_in_hand_rgb"].shape == (2, 16, 16, 3)
    contexts = ContextDataset.from_demos([demos])
    assert len(contexts) == 2 and contexts.states[1].shape == (92,)


def test_libero_instruction_given_as_word_list(tmp_path: Path) -> None:
    path = make_libero_file(tmp_path / "x.hdf5", instruction=["open", "the", "drawer"])
    assert read_demo_file(path, obs_keys=[]).instruction == "open the drawer"


def damage(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    write_demo_file(path, [episode(5)], "metaworld/reach-v3", "reach-v3", "reach")
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.__delitem__("data/demo_0/actions"), r"missing key data/demo_0/actions"),
        (lambda f: f.__delitem__("data/demo_0/obs/state"), r"missing key data/demo_0/obs/state"),
        (
            lambda f: (f.__delitem__("data/demo_0/actions"), f.create_dataset("data/demo_0/actions", data=np.zeros(5))),
            r"data/demo_0/actions has shape \(5,\)",
        ),
        (
            lambda f: (
                f.__delitem__("data/demo_0/states"),
                f.create_dataset("data/demo_0/states", data=np.zeros((4, 3))),
            ),
            r"data/demo_0/states has 4 steps but actions has 5",
        ),
        (lambda f: f.__delitem__("data/demo_0"), r"holds no demo_<i> groups"),
        (lambda f: f.__delitem__("data"), r"missing group 'data'"),
        (lambda f: f["data"].attrs.__setitem__("env_args", "{not json"), r"env_args.*not valid JSON"),
    ],
)
def test_damaged_files_name_the_file_and_key(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = damage(tmp_path / "bad.hdf5", edit)
    with pytest.raises(DemoFileError, match=message) as err:
        read_demo_file(path, obs_keys=["state"])
    assert str(path) in str(err.value)


def test_not_hdf5_and_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.hdf5"
    junk.write_text("not an hdf5 file")
    with pytest.raises(DemoFileError, match=f"{junk}: not a readable HDF5 file"):
        read_demo_file(junk)
    with pytest.raises(DemoFileError, match="no such demo file"):
        read_demo_file(tmp_path / "absent.hdf5")


def test_chunks_pad_with_the_last_action_and_mask_it(tmp_path: Path) -> None:
    eps = [episode(5, 0), episode(3, 1)]
    demos = read_demo_file(write_demo_file(tmp_path / "d.hdf5", eps, "metaworld/reach-v3", "reach-v3", "reach"))
    data = ChunkDataset([demos], chunk_size=4, state_keys=["state"], image_keys=[])
    assert len(data) == 8
    batch = data.batch(torch.tensor([3, 5, 7]))  # step 3 of ep 0, step 0 and 2 of ep 1
    a0, a1 = torch.from_numpy(eps[0].actions), torch.from_numpy(eps[1].actions)
    assert torch.equal(batch.actions[0], torch.stack([a0[3], a0[4], a0[4], a0[4]]))
    assert batch.action_mask[0].tolist() == [True, True, False, False]
    assert torch.equal(batch.actions[1], torch.stack([a1[0], a1[1], a1[2], a1[2]]))
    assert batch.action_mask[2].tolist() == [True, False, False, False]
    assert torch.equal(batch.obs.state[1], torch.from_numpy(eps[1].obs["state"][0]))
    with pytest.raises(DemoFileError, match="obs/joint_states"):
        ChunkDataset([demos], chunk_size=4, state_keys=["joint_states"], image_keys=[])


def with_states(ep: Episode, row: np.ndarray) -> Episode:
    """`ep` with `row` as its context (every states row equal to it, as collect_demos writes them)."""
    ep.states = np.repeat(np.asarray(row, dtype=np.float64)[None], len(ep), axis=0)
    return ep


def reach_file(path: Path, rows: list[np.ndarray], task: str = "reach-v3") -> Path:
    eps = [with_states(episode(5, i), row) for i, row in enumerate(rows)]
    return write_demo_file(path, eps, f"metaworld/{task}", task, "reach")


def test_contexts_from_demos_are_first_states(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    demos = read_demo_file(reach_file(tmp_path / "d.hdf5", list(reach_contexts)))
    ctx = ContextDataset.from_demos([demos])
    batch = ctx.gather([1, 0, 1])
    assert np.array_equal(batch.states[0], reach_contexts[1]) and batch.task_names == ["reach-v3"] * 3
    assert batch.env_names == ["metaworld/reach-v3"] * 3
    assert ctx.sample(16, torch.Generator().manual_seed(0)).states.shape == (16, reach_contexts.shape[1])


# ---- validation at open (issue #12: bad input never trains) -----------------------------------------------


def edit_demo_1(path: Path, key: str, value: np.ndarray) -> Path:
    """Replaces data/demo_1/<key> of a two-demo file with `value`."""
    with h5py.File(path, "a") as f:
        del f[f"data/demo_1/{key}"]
        f[f"data/demo_1/{key}"] = value
    return path


def two_demos(path: Path) -> Path:
    return write_demo_file(path, [episode(5, 0), episode(6, 1)], "metaworld/reach-v3", "reach-v3", "reach")


def refused(path: Path, message: str, obs_keys: list[str] | None = None) -> DemoFileError:
    with pytest.raises(DemoFileError, match=message) as err:
        read_demo_file(path, obs_keys=obs_keys)
    assert str(err.value).startswith(f"{path}: "), err.value
    return err.value


def with_value(value: float, at: tuple[int, ...], shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    arr = np.zeros(shape, dtype=dtype)
    arr[at] = value
    return arr


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "actions",
            with_value(np.nan, (3, 1), (6, 4)),
            r"data/demo_1/actions holds nan at step 3 \(index \(3, 1\), as float32\)",
        ),
        (
            "actions",
            with_value(1e300, (2, 0), (6, 4), np.float64),
            r"data/demo_1/actions holds inf at step 2 .*as float32",
        ),
        ("obs/state", with_value(-np.inf, (5, 38), (6, 39)), r"data/demo_1/obs/state holds -inf at step 5"),
        ("states", with_value(np.nan, (0, 7), (6, 12), np.float64), r"data/demo_1/states holds nan at step 0"),
        ("rewards", with_value(np.nan, (1,), (6,)), r"data/demo_1/rewards holds nan at step 1"),
    ],
)
def test_non_finite_values_are_refused(tmp_path: Path, key: str, value: np.ndarray, message: str) -> None:
    """NaN/inf would train into NaN weights; float64 actions too large for float32 become inf as trained."""
    refused(edit_demo_1(two_demos(tmp_path / "d.hdf5"), key, value), message)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "actions",
            np.zeros((6, 7), np.float32),
            r"demo_1/actions has per-step shape \(7,\) but data/demo_0/actions has ",
        ),
        (
            "obs/state",
            np.zeros((6, 40), np.float32),
            r"demo_1/obs/state has per-step shape \(40,\) but data/demo_0/obs",
        ),
        ("states", np.zeros((6, 11)), r"demo_1/states has per-step shape \(11,\) but data/demo_0/states has .*\(12,\)"),
    ],
)
def test_demos_of_one_file_must_agree(tmp_path: Path, key: str, value: np.ndarray, message: str) -> None:
    refused(edit_demo_1(two_demos(tmp_path / "d.hdf5"), key, value), message + ".*every demo of a file must agree")


def test_demos_of_one_file_must_have_the_same_obs_keys(tmp_path: Path) -> None:
    path = two_demos(tmp_path / "d.hdf5")
    with h5py.File(path, "a") as f:
        f["data/demo_1/obs/extra"] = np.zeros((6, 2), np.float32)
    refused(path, r"data/demo_1/obs/extra has per-step shape \(2,\) but data/demo_0/obs/extra is absent")
    assert list(read_demo_file(path, obs_keys=["state"]).episodes[1].obs) == ["state"]  # a key not read: fine


def test_sft_files_must_agree_and_both_are_named(tmp_path: Path) -> None:
    """Across the files of one SFT run: the action dim and the obs keys the policy reads must agree."""
    a = read_demo_file(two_demos(tmp_path / "a.hdf5"))
    wide = [episode(4, 2), episode(4, 3)]
    for ep in wide:
        ep.actions = np.zeros((4, 7), np.float32)
    b = read_demo_file(write_demo_file(tmp_path / "b.hdf5", wide, "metaworld/push-v3", "push-v3", "p"))
    with pytest.raises(DemoFileError, match=r"b.hdf5: data/demo_0/actions has per-step shape \(7,\)") as err:
        ChunkDataset([a, b], chunk_size=4, state_keys=["state"], image_keys=[])
    assert f"{tmp_path / 'a.hdf5'}: data/demo_0/actions has per-step shape (4,)" in str(err.value)
    c = read_demo_file(write_demo_file(tmp_path / "c.hdf5", [episode(4, 4, state_dim=30)], "metaworld/x", "x", "x"))
    with pytest.raises(DemoFileError, match=r"c.hdf5: data/demo_0/obs/state has per-step shape \(30,\) but .*a.hdf5"):
        ChunkDataset([a, c], chunk_size=4, state_keys=["state"], image_keys=[])
    other = episode(4, 5)
    other.obs["unused"], other.states = np.zeros((4, 3), np.float32), np.zeros((4, 2))  # not read by the policy
    d = read_demo_file(write_demo_file(tmp_path / "d.hdf5", [other], "metaworld/y", "y", "y"))
    assert len(ChunkDataset([a, d], chunk_size=4, state_keys=["state"], image_keys=[])) == 15


def test_cut_short_context_is_refused_at_open(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    """A real context stored narrower than its header says would be zero-padded into a corrupt start state."""
    length = int(reach_contexts[1, 2])
    path = edit_demo_1(
        reach_file(tmp_path / "d.hdf5", list(reach_contexts)), "states", np.tile(reach_contexts[1, :300], (5, 1))
    )
    refused(path, rf"data/demo_1/states\[0\] is cut short: 300 values, but its context header says {length}")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (4, lambda v: v + 1, r"has a context header whose sections add up to \d+ values, but whose length says"),
        (4, lambda v: v + 0.5, r"has a context header whose section sizes .* are not counts"),
        (2, lambda v: 5.0, r"has a context header whose length 5 is shorter than the header itself"),
    ],
    ids=["one more body", "half a body", "length inside the header"],
)
def test_damaged_context_header_is_refused(tmp_path: Path, reach_contexts: np.ndarray, field, value, message) -> None:  # type: ignore[no-untyped-def]
    row = reach_contexts[1].copy()
    row[field] = value(row[field])
    path = edit_demo_1(reach_file(tmp_path / "h.hdf5", list(reach_contexts)), "states", np.tile(row, (5, 1)))
    refused(path, r"data/demo_1/states\[0\] " + message)


def test_values_past_a_context_are_not_padding(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    not_padding = np.concatenate([reach_contexts[1], [0.0, 0.5]])
    path = reach_file(tmp_path / "p.hdf5", [np.concatenate([reach_contexts[0], [0.0, 0.0]]), not_padding])
    length = int(reach_contexts[1, 2])
    refused(path, rf"data/demo_1/states\[0\] holds non-zero values past its context length {length}")


def test_zero_padded_contexts_and_libero_state_rows_are_accepted(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    """Rows of a mixed-task array are zero-padded to the widest: padding is not corruption. LIBERO's own
    [time, qpos, qvel] rows carry no header and are left to the env."""
    padded = np.concatenate([reach_contexts, np.zeros((2, 50))], axis=1)
    ctx = ContextDataset.from_demos([read_demo_file(reach_file(tmp_path / "d.hdf5", list(padded)))])
    np.testing.assert_array_equal(ctx.gather([0, 1]).states, padded)
    libero = read_demo_file(make_libero_file(tmp_path / "l.hdf5"), obs_keys=[])
    assert ContextDataset.from_demos([libero]).states[0].shape == (92,)


def test_metaworld_contexts_must_be_contexts_of_the_files_task(tmp_path: Path, reach_contexts: np.ndarray) -> None:
    """Refused when building RIPT contexts, not when reading: such files are fine for SFT."""
    foreign = read_demo_file(reach_file(tmp_path / "f.hdf5", list(reach_contexts), task="push-v3"))
    with pytest.raises(
        DemoFileError, match=r"f.hdf5: data/demo_0/states\[0\] is a context of task id \d+ \(reach-v3\), but"
    ):
        ContextDataset.from_demos([foreign])
    random_rows = read_demo_file(two_demos(tmp_path / "r.hdf5"))
    with pytest.raises(DemoFileError, match=r"r.hdf5: data/demo_0/states\[0\] is not a context vector"):
        ContextDataset.from_demos([random_rows])


@pytest.mark.parametrize("states", [None, np.zeros(0)], ids=["no key", "robomimic empty"])
def test_files_without_states_train_sft_but_are_no_contexts(tmp_path: Path, states: np.ndarray | None) -> None:
    path = make_libero_file(tmp_path / "l.hdf5")
    with h5py.File(path, "a") as f:
        for name in ("demo_0", "demo_1"):
            del f[f"data/{name}/states"]
            if states is not None:
                f[f"data/{name}/states"] = states
    demos = read_demo_file(path, obs_keys=["joint_states"])
    assert len(ChunkDataset([demos], chunk_size=2, state_keys=["joint_states"], image_keys=[])) == 10
    with pytest.raises(DemoFileError, match=r"l.hdf5: data/demo_0/states is absent: .*contexts.source=demos"):
        ContextDataset.from_demos([demos])


def test_one_dimensional_states_must_be_empty(tmp_path: Path) -> None:
    refused(
        edit_demo_1(two_demos(tmp_path / "d.hdf5"), "states", np.zeros(12)), r"data/demo_1/states has shape \(12,\)"
    )


def test_non_numeric_datasets_are_refused_unread(tmp_path: Path) -> None:
    strings = np.array([[b"import os"] * 4] * 6, dtype=h5py.string_dtype())
    refused(edit_demo_1(two_demos(tmp_path / "s.hdf5"), "actions", strings), r"data/demo_1/actions has dtype object")
    record = np.zeros((6, 39), dtype=[("a", "f4"), ("b", "i4")])
    refused(edit_demo_1(two_demos(tmp_path / "r.hdf5"), "obs/state", record), r"data/demo_1/obs/state has dtype")


class _TouchOnUnpickle:
    """A pickle payload: unpickling it creates `path` (what an attacker's file would run instead)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def test_a_pickle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = pickle.dumps(_TouchOnUnpickle(marker))
    evil = tmp_path / "demos.hdf5"
    evil.write_bytes(payload)
    refused(evil, r"not a readable HDF5 file")
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it would have created the marker
    assert marker.exists()
