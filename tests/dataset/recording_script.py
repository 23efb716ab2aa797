"""A recorder stand-in for the crash-safety test: appends episodes forever until killed.

Episode ``e``'s content is a pure function of ``e`` (:func:`episode_content`), so after a
kill the test can check every committed episode bit for bit. Odd episodes are streamed frame
by frame (the recorder's path), even ones written whole (``add_episode``). Lines on stdout:
``ready N`` after opening (N committed episodes), ``begin E`` before writing episode E,
``committed E`` after its commit returned. The keys are not declared up front (the first
episode defines them) and a new meta entry appears at episode 4, so kills also land in
those one-off steps. The second argument names the image codec (``ImageStorage``): with a
lossy one, shards are written as frames stream in and at commits, so kills land there too.
A third argument ``batches`` writes every episode through ``add_episodes`` instead, in batches
of two or three (``committed`` is then not printed: a batch commits inside the call).
"""

from __future__ import annotations

import sys

import numpy as np

from robot_il.dataset import DatasetWriter, ImageStorage
from robot_il.dataset import writer as writer_module

IMAGE_SHAPE = (12, 16, 3)


def episode_content(episode: int) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    rng = np.random.default_rng(episode)
    length = 3 + (episode * 7) % 13
    steps = {
        "joint_pos": rng.normal(size=(length, 6)).astype(np.float32),
        "action": rng.normal(size=(length, 7)),
        "rgb_front": rng.integers(0, 256, (length, *IMAGE_SHAPE), dtype=np.uint8),
        "rgb_wrist": np.zeros((length, *IMAGE_SHAPE), np.uint8),  # all-black frames too
    }
    meta: dict[str, object] = {"success": bool(episode % 3), "task": f"task-{episode % 4}"}
    if episode >= 4:
        meta["operator"] = f"op{episode}"
    return steps, meta


def main(path: str, codec: str, batches: bool) -> None:
    try:
        writer = DatasetWriter.open(path, fsync=False)
    except Exception:
        writer = DatasetWriter.create(
            path, robot="ur5e", control_hz=10, fsync=False, image_storage=ImageStorage(codec)
        )
    print(f"ready {writer.num_episodes}", flush=True)
    if batches:
        writer_module.BATCH_BYTES = 20_000  # an episode is 2-19 kB: batches of a few
        writer.add_episodes(announced(writer.num_episodes))  # for ever
        return
    while True:
        episode = writer.num_episodes
        steps, meta = episode_content(episode)
        print(f"begin {episode}", flush=True)
        if episode % 2:
            stream = writer.begin_episode()
            for t in range(len(steps["action"])):
                stream.append({key: value[t] for key, value in steps.items()})
            stream.commit(meta)
        else:
            writer.add_episode(steps, meta)
        print(f"committed {episode}", flush=True)


def announced(first: int):
    """Episodes ``first, first + 1, ...`` for ever, each announced as it is taken."""
    episode = first
    while True:
        print(f"begin {episode}", flush=True)
        yield episode_content(episode)
        episode += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["batches"])
