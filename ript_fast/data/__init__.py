"""Demonstrations (robomimic/LIBERO HDF5 layout), supervised chunk samples, and RIPT context datasets."""

from ript_fast.data.chunks import ChunkDataset
from ript_fast.data.contexts import ContextBatch, ContextDataset
from ript_fast.data.demo_file import DemoFileError, DemoSet, Episode, read_demo_file, write_demo_file

__all__ = [
    "ChunkDataset",
    "ContextBatch",
    "ContextDataset",
    "DemoFileError",
    "DemoSet",
    "Episode",
    "read_demo_file",
    "write_demo_file",
]
