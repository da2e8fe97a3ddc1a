"""Demonstrations (robomimic/LIBERO HDF5 files, LeRobot datasets), supervised chunk samples, RIPT context datasets."""

from ript_fast.data.chunks import ChunkDataset
from ript_fast.data.contexts import ContextBatch, ContextDataset
from ript_fast.data.demo_file import DemoFileError, DemoSet, Episode, read_demo_file, write_demo_file
from ript_fast.data.lerobot_dataset import read_lerobot_dataset
from ript_fast.data.sources import read_demos

__all__ = [
    "ChunkDataset",
    "ContextBatch",
    "ContextDataset",
    "DemoFileError",
    "DemoSet",
    "Episode",
    "read_demo_file",
    "read_demos",
    "read_lerobot_dataset",
    "write_demo_file",
]
