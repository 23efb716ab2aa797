"""Compressed camera frames (format version 2): JPEG XL / JPEG 2000 frames in shard files.

Size against raw on camera-like frames, plain zarr opening the arrays, version 1 datasets
still read, damage inside shard files named, and the lossless diffusion_policy export.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from robot_il.cli import main as cli
from robot_il.dataset import Dataset, DatasetWriter, ImageStorage
from robot_il.dataset.format import frames_per_shard
from robot_il.dataset.store import bytes_on_disk
from robot_il.dataset.validate import validate
from robot_il.errors import DatasetError


def camera_frames(rng: np.random.Generator, length: int, height: int, width: int) -> np.ndarray:
    """A shaded table, a moving cube and sensor noise of 2 grey levels (std), as
    ``benchmarks/dataset_io.py`` makes its camera-like frames."""
    y, x = np.mgrid[0:height, 0:width]
    table = np.stack([90 + 0.4 * x, 80 + 0.3 * y, 70 + 0.2 * (x + y)], axis=-1)
    frames = np.empty((length, height, width, 3), np.uint8)
    for t in range(length):
        frame = table + rng.normal(scale=2.0, size=table.shape)
        frame[10 + t % 20 : 22 + t % 20, 30:42] = (200, 40, 40)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def _record(path: Path, episodes: list[np.ndarray], storage: ImageStorage | None = None) -> None:
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False,
                                  image_storage=storage)  # fmt: skip
    for index, frames in enumerate(episodes):
        steps = {"rgb_front": frames, "joint_pos": np.zeros((len(frames), 6), np.float32)}
        if index % 2:
            writer.add_episode(steps)
        else:  # streamed, as the recorder writes
            stream = writer.begin_episode()
            for t in range(len(frames)):
                stream.append({key: value[t] for key, value in steps.items()})
            stream.commit()
    writer.close()


def test_camera_frames_are_ten_times_smaller_in_few_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [camera_frames(rng, n, 96, 96) for n in (150, 120, 200)]
    _record(tmp_path / "jxl.zarr", episodes)
    _record(tmp_path / "blosc.zarr", episodes, ImageStorage("blosc"))
    raw = sum(e.nbytes for e in episodes)
    lossy = bytes_on_disk(tmp_path / "jxl.zarr" / "data" / "rgb_front")
    lossless = bytes_on_disk(tmp_path / "blosc.zarr" / "data" / "rgb_front")
    assert raw / lossy >= 10, f"only {raw / lossy:.1f}x smaller than raw"
    assert raw / lossless < 2  # Blosc cannot compress sensor noise: why a lossy codec
    files = [f for f in (tmp_path / "jxl.zarr" / "data" / "rgb_front").rglob("*") if f.is_file()]
    assert len(files) <= 2 + 470 // frames_per_shard(Dataset.open(tmp_path / "jxl.zarr").specs[
        "rgb_front"])  # fmt: skip
    dataset = Dataset.open(tmp_path / "jxl.zarr")
    stored = dataset.episode(2)["rgb_front"].astype(int)
    error = np.sqrt(np.mean((stored - episodes[2]) ** 2))
    assert error < 3.0, f"RMS error {error:.2f} grey levels at the default quality"


def test_quality_trades_size_for_error(tmp_path: Path) -> None:
    frames = camera_frames(np.random.default_rng(1), 30, 64, 80)
    sizes, errors = {}, {}
    for quality in (50, 95):
        path = tmp_path / f"q{quality}.zarr"
        _record(path, [frames], ImageStorage("jpegxl", quality))
        sizes[quality] = bytes_on_disk(path / "data" / "rgb_front")
        stored = Dataset.open(path).episode(0)["rgb_front"].astype(int)
        errors[quality] = np.abs(stored - frames).mean()
    assert sizes[50] < sizes[95] and errors[50] > errors[95]
    with pytest.raises(DatasetError, match="image quality must be in 1..100"):
        ImageStorage("jpegxl", 0)
    with pytest.raises(DatasetError, match="image codec 'png' is not one of"):
        ImageStorage("png")


def test_jpeg2k_quality_is_the_target_psnr_in_db(tmp_path: Path) -> None:
    """As data/README.md says (and diffusion_policy's ``Jpeg2k(level=...)`` means): the
    default 45 gives about 45 dB, not half of it; 100 is lossless."""
    frames = camera_frames(np.random.default_rng(2), 4, 48, 64)
    for quality in (30, None, 100):
        storage = ImageStorage("jpeg2k", quality)
        path = tmp_path / f"q{storage.effective_quality}.zarr"
        _record(path, [frames], storage)
        stored = Dataset.open(path).episode(0)["rgb_front"].astype(float)
        mse = np.mean((stored - frames) ** 2)
        if storage.effective_quality == 100:
            assert mse == 0
            continue
        psnr = 10 * np.log10(255**2 / mse)
        assert abs(psnr - storage.effective_quality) < 2, (storage, psnr)
    assert ImageStorage("jpeg2k").effective_quality == 45


def _psnr(stored: np.ndarray, frames: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((stored.astype(float) - frames) ** 2)))


def _unmark_jpeg2k_scale(path: Path) -> None:
    """Make ``path`` a jpeg2k store as written before the scale was marked: its attrs and
    its codec configuration then said only ``format`` and ``quality``."""
    root = path / "zarr.json"
    meta = json.loads(root.read_text())
    meta["attributes"]["image_storage"].pop("jpeg2k_scale")
    root.write_text(json.dumps(meta))
    array = path / "data" / "rgb_front" / "zarr.json"
    meta = json.loads(array.read_text())
    meta["codecs"][0]["configuration"]["codecs"][0]["configuration"].pop("jpeg2k_scale")
    array.write_text(json.dumps(meta))


def test_a_jpeg2k_store_without_the_scale_marker_keeps_its_halved_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """JPEG 2000 stores written before ``jpeg2k_scale`` encoded quality 45 at 22.5 dB: frames
    appended to one are encoded as its first ones were (not at 45 dB), ``data info`` shows
    the target each store has, and a merge of an old and a new store at the same quality
    number encodes the second store's frames again, on the first's scale."""
    rng = np.random.default_rng(7)
    old, new = tmp_path / "old.zarr", tmp_path / "new.zarr"
    first, appended, other = (camera_frames(rng, 4, 48, 64) for _ in range(3))
    _record(old, [first], ImageStorage("jpeg2k", 45))
    _unmark_jpeg2k_scale(old)
    _record(new, [other], ImageStorage("jpeg2k", 45))
    with DatasetWriter.open(old, fsync=False) as writer:
        writer.add_episode({"rgb_front": appended, "joint_pos": np.zeros((4, 6), np.float32)})
    stored = Dataset.open(old)
    assert abs(_psnr(stored.episode(1)["rgb_front"], appended) - 22.5) < 2
    assert abs(_psnr(Dataset.open(new).episode(0)["rgb_front"], other) - 45) < 2
    for path, target in ((old, "22.5"), (new, "45")):
        assert cli(["data", "info", str(path)]) == 0
        line = f"images       jpeg2k, quality 45 (target PSNR {target} dB)"
        assert line in capsys.readouterr().out
    merged = tmp_path / "merged.zarr"
    assert cli(["data", "merge", str(merged), str(old), str(new)]) == 0
    dataset = Dataset.open(merged)
    assert dataset.attrs["image_storage"]["jpeg2k_scale"] == "half_psnr_db"
    np.testing.assert_array_equal(dataset.episode(1)["rgb_front"], stored.episode(1)["rgb_front"])
    assert _psnr(dataset.episode(2)["rgb_front"], other) < 25


def test_plain_zarr_opens_compressed_arrays(tmp_path: Path) -> None:
    """In a fresh interpreter whose script never imports robot_il (zarr loads the codec
    through its ``zarr.codecs`` entry point), and here, where robot_il is imported."""
    frames = camera_frames(np.random.default_rng(2), 12, 48, 64)
    _record(tmp_path / "d.zarr", [frames])
    expected = Dataset.open(tmp_path / "d.zarr").episode(0)["rgb_front"]
    np.save(tmp_path / "expected.npy", expected)
    script = (
        "import numpy as np, zarr\n"
        f"a = zarr.open_group({str(tmp_path / 'd.zarr')!r}, mode='r')['data/rgb_front']\n"
        f"assert np.array_equal(a[:12], np.load({str(tmp_path / 'expected.npy')!r}))\n"
        "print(a.shards, a.chunks)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    array = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")["data/rgb_front"]
    assert array.chunks == (1, 48, 64, 3) and array.shards[0] > 12
    np.testing.assert_array_equal(array[:12], expected)
    codec = json.loads((tmp_path / "d.zarr" / "data" / "rgb_front" / "zarr.json").read_text())
    inner = codec["codecs"][0]["configuration"]["codecs"][0]
    assert inner == {"name": "robot_il.image", "configuration": {"format": "jpegxl",
                                                                "quality": 90}}  # fmt: skip


def write_format_v1(path: Path) -> None:
    """A dataset as robot_il wrote it before compressed frames (format version 1): its arrays
    are today's lossless layout (Blosc, one file per frame; their zarr.json files compared
    equal to a dataset written at commit b7581a3), its root attributes those of version 1."""
    writer = DatasetWriter.create(
        path, robot="ur5e", control_hz=10, attrs={"task": "reach"}, fsync=False,
        image_storage=ImageStorage("blosc"),
    )  # fmt: skip
    for episode, steps in enumerate([3, 4]):
        rng = np.random.default_rng(episode)
        writer.add_episode({
            "joint_pos": rng.normal(size=(steps, 6)).astype(np.float32),
            "action": rng.normal(size=(steps, 7)).astype(np.float32),
            "rgb_front": rng.integers(0, 256, (steps, 6, 8, 3), dtype=np.uint8),
        }, {"success": bool(episode)})  # fmt: skip
    writer.close()
    (path / ".writer.lock").unlink()
    root = zarr.open_group(str(path), mode="r+")
    attrs = {k: v for k, v in root.attrs.asdict().items() if k != "image_storage"}
    root.attrs.clear()
    root.attrs.update({**attrs, "format_version": 1})


def test_format_version_1_dataset_still_reads_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "v1.zarr"
    write_format_v1(path)
    dataset = Dataset.open(path)
    assert dataset.attrs["format_version"] == 1 and dataset.num_episodes == 2
    first = dataset.episode(1)["rgb_front"]
    rng = np.random.default_rng(1)  # how the fixture was made
    rng.normal(size=(4, 6)), rng.normal(size=(4, 7))
    np.testing.assert_array_equal(first, rng.integers(0, 256, (4, 6, 8, 3), dtype=np.uint8))
    assert validate(path).ok
    frames = np.full((2, 6, 8, 3), 7, np.uint8)
    writer = DatasetWriter.open(path, fsync=False)  # appends keep the lossless layout
    writer.add_episode({"rgb_front": frames, "joint_pos": np.zeros((2, 6), np.float32),
                        "action": np.zeros((2, 7), np.float32)})  # fmt: skip
    writer.close()
    reread = Dataset.open(path, cache="compressed")
    np.testing.assert_array_equal(reread.episode(2)["rgb_front"], frames)
    np.testing.assert_array_equal(reread.episode(1)["rgb_front"], first)
    assert reread.attrs["format_version"] == 1


def test_damaged_shards_are_named(tmp_path: Path) -> None:
    path = tmp_path / "d.zarr"
    rng = np.random.default_rng(3)
    episodes = [camera_frames(rng, 5, 32, 32), camera_frames(rng, 4, 32, 32)]
    _record(path, episodes)
    shard = path / "data" / "rgb_front" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # inside the index: its checksum no longer matches
    shard.write_bytes(bytes(data))
    assert any("shard index checksum mismatch" in p for p in validate(path).problems)
    with pytest.raises(DatasetError, match="data/rgb_front episode 0"):
        Dataset.open(path).episode(0)
    shard.unlink()
    assert "data/rgb_front: episode 0: 1 shard file(s) missing" in validate(path).problems


def test_export_zarr_format_2_reencodes_frames_with_blosc(tmp_path: Path) -> None:
    frames = camera_frames(np.random.default_rng(4), 10, 32, 40)
    _record(tmp_path / "src.zarr", [frames])
    stored = Dataset.open(tmp_path / "src.zarr").episode(0)["rgb_front"]
    out = tmp_path / "dp.zarr"
    assert cli(["data", "export", str(tmp_path / "src.zarr"), str(out), "--zarr-format", "2"]) == 0
    zarray = json.loads((out / "data" / "rgb_front" / ".zarray").read_text())
    assert zarray["compressor"]["id"] == "blosc" and zarray["chunks"] == [1, 32, 40, 3]
    root = zarr.open_group(str(out), mode="r", zarr_format=2)
    np.testing.assert_array_equal(root["data/rgb_front"][:], stored)  # no second loss
    assert root.attrs["image_storage"] == {"codec": "blosc", "quality": None}


def test_data_info_shows_bytes_per_frame(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _record(tmp_path / "d.zarr", [camera_frames(np.random.default_rng(5), 20, 48, 64)])
    assert cli(["data", "info", str(tmp_path / "d.zarr")]) == 0
    out = capsys.readouterr().out
    assert "images       jpegxl, quality 90" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("rgb_front"))
    per_frame = bytes_on_disk(tmp_path / "d.zarr" / "data" / "rgb_front") / 20
    assert f"{per_frame / 1e3:.1f} kB/frame" in line


def test_merge_and_drop_copy_compressed_frames_without_a_second_loss(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a = [camera_frames(rng, n, 32, 40) for n in (7, 5)]
    b = [camera_frames(rng, 6, 32, 40)]
    _record(tmp_path / "a.zarr", a)
    _record(tmp_path / "b.zarr", b)
    stored = [Dataset.open(tmp_path / name).episode(e)["rgb_front"]
              for name, e in (("a.zarr", 0), ("a.zarr", 1), ("b.zarr", 0))]  # fmt: skip
    merged = tmp_path / "m.zarr"
    assert (
        cli(["data", "merge", str(merged), str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]) == 0
    )
    assert cli(["data", "drop-episode", str(merged), "0", "--force"]) == 0
    result = Dataset.open(merged)
    assert result.num_episodes == 2 and validate(merged).ok
    np.testing.assert_array_equal(result.episode(0)["rgb_front"], stored[1])  # bit for bit
    np.testing.assert_array_equal(result.episode(1)["rgb_front"], stored[2])
    np.testing.assert_array_equal(result.episode(1)["joint_pos"], np.zeros((6, 6), np.float32))


def test_decoding_into_ram_counts_camera_frames_episode_by_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training decodes every frame into RAM first (30 s for 200 push demonstrations): its
    bar counts frames, moving after each episode of each camera. Before, it counted keys, and
    stood still on the one camera key for all of that time."""
    import io

    from tqdm import tqdm

    from robot_il.dataset import reader

    shown = io.StringIO()

    class VisibleBar(tqdm):  # the bar a terminal shows (tests run without one)
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "disable": False, "file": shown,
                                       "mininterval": 0, "miniters": 1, "ncols": 100})  # fmt: skip

    monkeypatch.setattr(reader, "tqdm", VisibleBar)
    rng = np.random.default_rng(0)
    _record(tmp_path / "d.zarr", [camera_frames(rng, n, 32, 32) for n in (5, 7, 4)])
    Dataset.open(tmp_path / "d.zarr", cache="ram")
    counts = [line.split("|")[2].split()[0] for line in shown.getvalue().split("\r") if "|" in line]
    assert "decoding frames into RAM" in shown.getvalue() and "frame/s" in shown.getvalue()
    assert counts[-1] == "16/16" and {"5/16", "12/16"} <= set(counts), counts
