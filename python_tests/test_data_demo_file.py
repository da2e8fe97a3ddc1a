"""Demo HDF5 files: the written schema, LIBERO/robomimic files, and clear errors for damaged files."""

from __future__ import annotations

import json
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


def test_contexts_from_demos_are_first_states(tmp_path: Path) -> None:
    eps = [episode(5, 0), episode(3, 1)]
    demos = read_demo_file(write_demo_file(tmp_path / "d.hdf5", eps, "metaworld/reach-v3", "reach-v3", "reach"))
    ctx = ContextDataset.from_demos([demos])
    batch = ctx.gather([1, 0, 1])
    assert np.array_equal(batch.states[0], eps[1].states[0]) and batch.task_names == ["reach-v3"] * 3
    assert batch.env_names == ["metaworld/reach-v3"] * 3
    assert ctx.sample(16, torch.Generator().manual_seed(0)).states.shape == (16, 12)
