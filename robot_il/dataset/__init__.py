"""Zarr demonstration datasets: format, crash-safe writer, reader, training windows,
normalisation and splits. The on-disk format is documented in ``data/README.md``."""

from robot_il.dataset import image_codec as _image_codec  # noqa: F401 - registers the codec
from robot_il.dataset.format import FORMAT_VERSION, ImageStorage, KeySpec
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
    "ImageStorage",
    "KeySpec",
    "Normalizer",
    "SequenceSampler",
    "ValidationReport",
    "split_episodes",
    "validate",
]
