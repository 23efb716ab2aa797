"""Zarr demonstration datasets: format, crash-safe writer, reader, training windows,
normalisation and splits. The on-disk format is documented in ``data/README.md``."""

from robot_il.dataset.format import FORMAT_VERSION, KeySpec
from robot_il.dataset.normalizer import Normalizer
from robot_il.dataset.reader import Dataset
from robot_il.dataset.sampler import SequenceSampler
from robot_il.dataset.split import split_episodes
from robot_il.dataset.validate import ValidationReport, validate
from robot_il.dataset.writer import DatasetWriter, EpisodeWriter

__all__ = [
    "FORMAT_VERSION",
    "Dataset",
    "DatasetWriter",
    "EpisodeWriter",
    "KeySpec",
    "Normalizer",
    "SequenceSampler",
    "ValidationReport",
    "split_episodes",
    "validate",
]
