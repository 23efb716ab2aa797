"""LeRobot v3 datasets: export a robot_il dataset to LeRobot's layout, and import one back.

LeRobot's policies (ACT, pi0, SmolVLA) and its visualizer read datasets in its own layout;
the ``lerobot`` package itself cannot be installed beside our torch, so this module writes and
reads the files directly, with ``pyarrow`` (parquet) and ``av`` (mp4):

```
meta/info.json                               codebase_version "v3.0", fps, features, paths
meta/stats.json                              min / max / mean / std / count per feature
meta/tasks.parquet                           task string (index) -> task_index
meta/episodes/chunk-000/file-000.parquet     one row per episode: length, tasks, where its
                                             rows and video segments are, its stats
data/chunk-000/file-000.parquet              one row per step, every episode
videos/observation.images.<cam>/chunk-000/file-000.mp4   one stream per camera, episodes
                                             back to back; frame i of an episode is at
                                             from_timestamp + i / fps
```

Keys map as: ``rgb_<cam>`` <-> ``observation.images.<cam>`` (H.264 video, yuv420p: lossy);
``action`` <-> ``action``; another robot_il key ``<k>`` <-> ``observation.<k>``; and
``observation.state`` is written as ``joint_pos`` + ``gripper`` (per arm), what LeRobot's
policies take as the robot state. LeRobot's ``timestamp`` is the frame time ``i / fps`` (how
its loader finds video frames); robot_il's recorded ``timestamp`` travels as
``observation.timestamp``. robot_il's own attributes (robot, units, task) go to
``info.json["robot_il"]`` so an import restores them; a foreign dataset's ``observation.state``
becomes the key ``state``.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robot_il.dataset.durability import replace_atomically
from robot_il.dataset.format import RESERVED_ATTRS, ImageStorage, KeySpec, specs_from_attrs
from robot_il.dataset.reader import Dataset
from robot_il.dataset.writer import DatasetWriter
from robot_il.errors import DatasetError

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
IMAGE_FEATURE_PREFIX = "observation.images."
STATE_FEATURE = "observation.state"
#: H.264 in yuv420p: every player and LeRobot's decoders read it; a key frame every 2 frames
#: (LeRobot's choice) keeps random access to a frame cheap.
VIDEO_CODEC, PIX_FMT, GOP, CRF = "libx264", "yuv420p", 2, 18
#: Episode columns holding robot_il's per-episode values (``meta/<name>``), restored on import.
EPISODE_META_PREFIX = "robot_il/"
_FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def feature_name(key: str) -> str:
    """The LeRobot feature a robot_il key is exported as."""
    if key.startswith("rgb_"):
        return IMAGE_FEATURE_PREFIX + key[len("rgb_") :]
    if key == "action":
        return "action"
    return f"observation.{key}"


def key_name(feature: str) -> str:
    """The robot_il key a LeRobot feature is imported as (the inverse of :func:`feature_name`;
    a foreign ``observation.state`` becomes ``state``)."""
    if feature.startswith(IMAGE_FEATURE_PREFIX):
        return "rgb_" + feature[len(IMAGE_FEATURE_PREFIX) :]
    if feature.startswith("observation."):
        return feature[len("observation.") :]
    return feature


def _state_keys(dataset: Dataset) -> list[str]:
    """The keys ``observation.state`` concatenates: joint positions and gripper, per arm."""
    keys = []
    for prefix in ("", "left_", "right_"):
        keys += [k for k in (f"{prefix}joint_pos", f"{prefix}gripper") if k in dataset.specs]
    return keys


def export_lerobot(dataset: Dataset, target: Path, *, force: bool) -> None:
    """Write ``dataset`` as a LeRobot v3 dataset at ``target`` (built aside, then moved)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fps = dataset.control_hz
    if not fps:
        raise DatasetError(f"{dataset.where}: no control_hz; LeRobot needs a frame rate")
    lowdim = [k for k in dataset.keys if not dataset.specs[k].is_image]
    for key in lowdim:
        if len(dataset.specs[key].shape) > 1:
            raise DatasetError(
                f"{dataset.where}: key {key!r} of shape {dataset.specs[key].shape} has no "
                "LeRobot feature (only vectors and camera images export)"
            )
    cameras = dataset.image_keys
    for key in cameras:
        if dataset.specs[key].shape[-1] != 3 or any(n % 2 for n in dataset.specs[key].shape[:2]):
            raise DatasetError(f"{dataset.where}: {key} must be RGB with even height and width "
                               f"for yuv420p video, got {dataset.specs[key].shape}")  # fmt: skip
    tasks = _episode_tasks(dataset)
    task_ids = {task: i for i, task in enumerate(dict.fromkeys(tasks))}
    state_keys = _state_keys(dataset)

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        columns: dict[str, list[np.ndarray]] = {name: [] for name in _FRAME_COLUMNS}
        features_data: dict[str, list[np.ndarray]] = {feature_name(k): [] for k in lowdim}
        if state_keys:
            features_data[STATE_FEATURE] = []
        episodes = []
        writers = {key: _VideoWriter(tmp, key, dataset.specs[key].shape, fps) for key in cameras}
        for episode in tqdm(range(dataset.num_episodes), desc="exporting to LeRobot",
                            unit="episode", disable=None):  # fmt: skip
            span = dataset.episode_slice(episode)
            length = span.stop - span.start
            steps = dataset.episode(episode, lowdim)
            for key in lowdim:
                features_data[feature_name(key)].append(_as_rows(steps[key]))
            if state_keys:
                state = np.concatenate([_as_rows(steps[k]) for k in state_keys], axis=1)
                features_data[STATE_FEATURE].append(state.astype(np.float32))
            frame_index = np.arange(length, dtype=np.int64)
            columns["timestamp"].append((frame_index / fps).astype(np.float32))
            columns["frame_index"].append(frame_index)
            columns["episode_index"].append(np.full(length, episode, np.int64))
            columns["index"].append(np.arange(span.start, span.stop, dtype=np.int64))
            columns["task_index"].append(np.full(length, task_ids[tasks[episode]], np.int64))
            row: dict[str, Any] = {
                "episode_index": episode,
                "tasks": [tasks[episode]],
                "length": length,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": span.start,
                "dataset_to_index": span.stop,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
            for name, value in dataset.meta(episode).items():  # success, operator, ...
                if name != "task":
                    row[f"{EPISODE_META_PREFIX}{name}"] = value
            stats: dict[str, dict[str, np.ndarray]] = {
                name: _stats(values[-1]) for name, values in features_data.items()
            }
            for key, writer in writers.items():
                frames = dataset.get(key, span.start, span.stop)
                start = writer.write(frames)
                name = feature_name(key)
                row[f"videos/{name}/chunk_index"] = 0
                row[f"videos/{name}/file_index"] = 0
                row[f"videos/{name}/from_timestamp"] = start / fps
                row[f"videos/{name}/to_timestamp"] = (start + length) / fps
                stats[name] = _image_stats(frames)
            for name, values in stats.items():
                for stat, value in values.items():
                    row[f"stats/{name}/{stat}"] = np.asarray(value).tolist()
            episodes.append(row)
        for writer in writers.values():
            writer.close()

        table = {name: np.concatenate(values) for name, values in columns.items()}
        data_columns = {name: _arrow_column(np.concatenate(v)) for name, v in
                        features_data.items()}  # fmt: skip
        data_columns.update({name: pa.array(v) for name, v in table.items()})
        data_file = tmp / DATA_PATH.format(chunk_index=0, file_index=0)
        data_file.parent.mkdir(parents=True)
        pq.write_table(pa.table(data_columns), data_file)
        episodes_file = tmp / EPISODES_PATH
        episodes_file.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(episodes), episodes_file)
        _write_tasks(tmp / "meta" / "tasks.parquet", task_ids)
        all_stats = {name: _stats(np.concatenate(v)) for name, v in features_data.items()}
        for key in cameras:
            all_stats[feature_name(key)] = _image_stats(_sample_frames(dataset, key))
        (tmp / "meta" / "stats.json").write_text(json.dumps(
            {name: {s: np.asarray(v).tolist() for s, v in values.items()}
             for name, values in all_stats.items()}, indent=2))  # fmt: skip
        info = _info(dataset, fps, lowdim, cameras, state_keys, len(task_ids))
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=2))

    replace_atomically(target, build, force=force, is_store=_is_lerobot, kind="LeRobot dataset")


def import_lerobot(source: Path, target: Path, *, force: bool,
                   image_storage: ImageStorage | None = None) -> int:  # fmt: skip
    """Write the LeRobot v3 dataset at ``source`` as a robot_il dataset at ``target``;
    returns the number of episodes."""
    source = Path(source)
    info = _read_info(source)
    version, fps, features = info["codebase_version"], float(info["fps"]), info["features"]
    ours = info.get("robot_il") or {}
    data = _read_parquets(source, "data", "index", ())
    episodes = _read_parquets(source, "meta/episodes", "episode_index",
                              ("dataset_from_index", "dataset_to_index")).to_pylist()  # fmt: skip
    skip = set(_FRAME_COLUMNS)
    if ours:  # robot_il wrote observation.state from keys it also wrote on their own
        skip.add(STATE_FEATURE)
    lowdim = [f for f, spec in features.items()
              if f not in skip and spec.get("dtype") not in ("video", "image")]  # fmt: skip
    missing = [f for f in lowdim if f not in data.column_names]
    if missing:
        raise DatasetError(f"{source}: feature {missing[0]!r} of meta/info.json has no column "
                           "in data/")  # fmt: skip
    cameras = [f for f, spec in features.items() if spec.get("dtype") == "video"]
    images = [f for f, spec in features.items() if spec.get("dtype") == "image"]
    if images:
        raise DatasetError(f"{source}: feature {images[0]!r} stores images in parquet; "
                           "only video features are read")  # fmt: skip
    attrs = {k: v for k, v in (ours.get("attrs") or {}).items() if k not in RESERVED_ATTRS}
    attrs.setdefault("source", f"LeRobot {version} dataset {source.name}")
    specs: dict[str, KeySpec] | None = specs_from_attrs(ours) if ours else None
    robot = ours.get("robot") or info.get("robot_type") or "unknown"

    readers = {f: _VideoReader(source, info, f) for f in cameras}
    for reader in readers.values():  # a missing video is found before anything is written
        for row in episodes:
            reader.path(row)

    def build(tmp: Path) -> None:
        writer = DatasetWriter.create(tmp, robot=str(robot), control_hz=fps, attrs=attrs,
                                      keys=specs, fsync=False,
                                      image_storage=image_storage)  # fmt: skip

        def read(row: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
            start, stop = int(row["dataset_from_index"]), int(row["dataset_to_index"])
            steps: dict[str, np.ndarray] = {}
            for feature in lowdim:
                steps[key_name(feature)] = _column_rows(data, feature, start, stop, features)
            for feature in cameras:
                steps[key_name(feature)] = readers[feature].frames(row, stop - start, fps)
            if specs is None:  # a foreign dataset: its frame times, and vectors as they are
                steps["timestamp"] = _column_rows(data, "timestamp", start, stop, features)[
                    :, 0].astype(np.float64)  # fmt: skip
            else:  # robot_il's own shapes and dtypes (a scalar key is a 1-vector in parquet)
                steps = {k: v.reshape(len(v), *specs[k].shape).astype(specs[k].dtype)
                         for k, v in steps.items()}  # fmt: skip
            meta = {"task": str(row["tasks"][0])} if row.get("tasks") else {}
            meta |= {k[len(EPISODE_META_PREFIX) :]: v for k, v in row.items()
                     if k.startswith(EPISODE_META_PREFIX) and v is not None}  # fmt: skip
            return steps, meta

        rows = tqdm(episodes, desc="importing LeRobot", unit="episode", disable=None)
        writer.add_episodes(read(row) for row in rows)  # committed in batches
        writer.close()

    replace_atomically(target, build, force=force)
    return len(episodes)


# ------------------------------------------------------------------------------- helpers


def _read_info(source: Path) -> dict[str, Any]:
    """``meta/info.json``, checked for what the import needs before it writes anything."""
    info_file = source / "meta" / "info.json"
    if not source.exists():  # a typo: say so, not that something there is not a dataset
        raise DatasetError(f"{source}: does not exist")
    if not info_file.is_file():
        raise DatasetError(f"{source}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(info_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{info_file}: not valid JSON: {error}") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{info_file}: not a JSON object")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{source}: LeRobot codebase_version {version!r}; only v3.x is read")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise DatasetError(f"{info_file}: 'fps' must be a positive number, got {fps!r}")
    features = info.get("features")
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise DatasetError(f"{info_file}: 'features' must map each feature to its description")
    return info


def _is_lerobot(path: Path) -> bool:
    return (path / "meta" / "info.json").is_file()


def _episode_tasks(dataset: Dataset) -> list[str]:
    """Each episode's task string: its ``meta/task``, else the dataset's ``task`` attr."""
    default = str(dataset.attrs.get("task") or "")
    tasks = []
    for episode in range(dataset.num_episodes):
        task = dataset.meta(episode).get("task") if "task" in dataset.meta_names else None
        tasks.append(str(task or default))
    return tasks


def _as_rows(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], -1)


def _arrow_column(values: np.ndarray) -> Any:
    """A (T, n) array as a parquet column of fixed-size lists (LeRobot's vector features)."""
    import pyarrow as pa

    values = _as_rows(values)
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    values = _as_rows(values).astype(np.float64)
    return {
        "min": values.min(axis=0), "max": values.max(axis=0), "mean": values.mean(axis=0),
        "std": values.std(axis=0), "count": np.array([len(values)]),
    }  # fmt: skip


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of frames scaled to [0, 1], shaped (3, 1, 1) as LeRobot's."""
    pixels = frames.reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0
    stats = _stats(pixels)
    return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in stats.items()} | {
        "count": np.array([len(frames)])
    }


def _sample_frames(dataset: Dataset, key: str, most: int = 500) -> np.ndarray:
    steps = np.linspace(0, dataset.num_steps - 1, min(most, dataset.num_steps)).astype(int)
    return np.stack([dataset.get(key, int(s), int(s) + 1)[0] for s in steps])


def _write_tasks(path: Path, task_ids: dict[str, int]) -> None:
    """``tasks.parquet``: the task strings as the (pandas) index, ``task_index`` a column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"task_index": list(task_ids.values()), "task": list(task_ids)})
    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
    }  # fmt: skip
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, path)


def _info(
    dataset: Dataset,
    fps: float,
    lowdim: list[str],
    cameras: list[str],
    state_keys: list[str],
    num_tasks: int,
) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for key in lowdim:
        spec = dataset.specs[key]
        size = int(np.prod(spec.shape, dtype=np.int64))
        names = [f"{key}_{i}" for i in range(size)]
        features[feature_name(key)] = {"dtype": spec.dtype, "shape": [size], "names": names}
    if state_keys:
        names = [f"{k}_{i}" for k in state_keys for i in range(dataset.specs[k].shape[0])]
        features[STATE_FEATURE] = {"dtype": "float32", "shape": [len(names)], "names": names}
    for key in cameras:
        height, width, channels = dataset.specs[key].shape
        features[feature_name(key)] = {
            "dtype": "video",
            "shape": [height, width, channels],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": height, "video.width": width, "video.codec": "h264",
                "video.pix_fmt": PIX_FMT, "video.is_depth_map": False, "video.fps": fps,
                "video.channels": channels, "video.g": GOP, "video.crf": CRF,
                "has_audio": False,
            },
        }  # fmt: skip
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    attrs = {k: v for k, v in dataset.attrs.items() if k not in RESERVED_ATTRS}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": dataset.robot,
        "total_episodes": dataset.num_episodes,
        "total_frames": dataset.num_steps,
        "total_tasks": num_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{dataset.num_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None,
        "features": features,
        "robot_il": {
            "robot": dataset.robot,
            "keys": {k: spec.to_attrs() for k, spec in dataset.specs.items()},
            "attrs": json.loads(json.dumps(attrs, default=str)),
        },
    }


class _VideoWriter:
    """One camera's mp4: frames of every episode back to back, frame n at pts n (1 / fps)."""

    def __init__(self, root: Path, key: str, shape: tuple[int, ...], fps: float) -> None:
        import av

        path = root / VIDEO_PATH.format(video_key=feature_name(key), chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True)
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(VIDEO_CODEC, rate=rate)
        self._stream.height, self._stream.width = int(shape[0]), int(shape[1])
        self._stream.pix_fmt = PIX_FMT
        self._stream.time_base = 1 / rate
        self._stream.options = {"crf": str(CRF), "g": str(GOP), "bf": "0"}
        self.frames = 0

    def write(self, frames: np.ndarray) -> int:
        """Append ``frames`` (T, H, W, 3) uint8; returns the index of the first."""
        import av

        first = self.frames
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return first

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class _VideoReader:
    """Frames of one camera's mp4 files by timestamp, as LeRobot's loader finds them."""

    def __init__(self, root: Path, info: dict[str, Any], feature: str) -> None:
        self._root, self._info, self._feature = root, info, feature

    def path(self, row: dict[str, Any]) -> Path:
        """The mp4 holding the episode of ``row`` (a meta/episodes row); a DatasetError if
        it is missing."""
        try:
            chunk = int(row[f"videos/{self._feature}/chunk_index"])
            file = int(row[f"videos/{self._feature}/file_index"])
            template = self._info["video_path"]
        except (KeyError, TypeError) as error:  # TypeError: a None (absent) value
            episode = row["episode_index"]
            raise DatasetError(f"{self._root}: video feature {self._feature!r}: no {error} "
                               f"in meta/ for episode {episode}") from None  # fmt: skip
        path = self._root / template.format(
            video_key=self._feature, chunk_index=chunk, file_index=file
        )
        if not path.is_file():
            raise DatasetError(f"{self._root}: video {path.relative_to(self._root)} is missing")
        return path

    def frames(self, row: dict[str, Any], count: int, fps: float) -> np.ndarray:
        """The ``count`` frames of the episode of ``row``, from its ``from_timestamp`` on."""
        import av

        path = self.path(row)
        first = float(row[f"videos/{self._feature}/from_timestamp"])
        wanted = first + np.arange(count) / fps
        out: list[np.ndarray | None] = [None] * count
        tolerance = 0.5 / fps
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            container.seek(int(max(first - 1.0, 0) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                index = int(round((t - first) * fps))
                if 0 <= index < count and abs(t - wanted[index]) < tolerance:
                    out[index] = frame.to_ndarray(format="rgb24")
                if t > wanted[-1] + tolerance:
                    break
        missing = [i for i, f in enumerate(out) if f is None]
        if missing:
            raise DatasetError(f"{path}: no frame at {wanted[missing[0]]:.4f} s "
                               f"({len(missing)} of {count} frames missing)")  # fmt: skip
        return np.stack(out)


def _read_parquets(root: Path, folder: str, order: str, needed: tuple[str, ...]) -> Any:
    """Every parquet file under ``folder`` as one table sorted by the column ``order``;
    a missing folder, an empty table or a missing ``order`` or ``needed`` column is a
    DatasetError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((root / folder).rglob("*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no parquet files under {folder}/")
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
    except (OSError, pa.ArrowInvalid) as error:
        raise DatasetError(f"{root}: unreadable parquet under {folder}/: {error}") from None
    if not table.num_rows:
        raise DatasetError(f"{root}: {folder}/ holds no rows")
    absent = [name for name in (order, *needed) if name not in table.column_names]
    if absent:
        raise DatasetError(f"{root}: {folder}/ has no {absent[0]!r} column")
    return table.sort_by(order)


def _column_rows(table: Any, feature: str, start: int, stop: int,
                 features: dict[str, Any]) -> np.ndarray:  # fmt: skip
    """Rows ``[start, stop)`` of a data column as a (T, n) array of the feature's dtype."""
    column = table.column(feature).slice(start, stop - start).combine_chunks()
    dtype = np.dtype(features[feature]["dtype"])
    if hasattr(column, "flatten") and hasattr(column.type, "value_type"):
        values = column.flatten().to_numpy(zero_copy_only=False).astype(dtype)
        return values.reshape(stop - start, -1)
    return column.to_numpy(zero_copy_only=False).astype(dtype).reshape(stop - start, -1)
