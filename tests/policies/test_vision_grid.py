"""``benchmarks/vision.py``'s grid: a bad ``--action-steps`` for any recipe is refused before
the first cell trains, a cell evaluated executing other ``--action-steps`` gets a plot line of
its own, state cells too, and a cell trained on a GPU machine (``--train-only``) is evaluated
here from its saved checkpoint (``--partial``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

import pytest

from robot_il.errors import ConfigError


@pytest.fixture
def vision(monkeypatch: pytest.MonkeyPatch, load_benchmark) -> ModuleType:
    """The benchmark module (its ``from policies import ...`` is ``benchmarks/policies.py``);
    the tests give it cells under ``tmp_path`` (``--results``)."""
    monkeypatch.setitem(sys.modules, "policies", load_benchmark("policies"))
    return load_benchmark("vision")


def _grid(**changes) -> argparse.Namespace:
    grid = dict(tasks=["push"], backends=["mujoco"], policies=["bc"], observations=["state"],
                cameras=["front"], counts=[1], recording=None, goal_keys=[], aux_weight=0.0,
                episodes=50, steps=None, action_steps=None, partial=False, train_only=False,
                extra=[], recorded_cameras=[], results=Path("no_cells.json"))  # fmt: skip
    return argparse.Namespace(**(grid | changes))


def test_a_bad_action_steps_for_the_second_recipe_is_refused_before_the_first_trains(
    vision: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def trained(*_args, **_kwargs):
        raise AssertionError("a cell trained before --action-steps was checked")

    monkeypatch.setattr(vision, "run_cell", trained)
    monkeypatch.setattr(vision, "demos", trained)
    # state Diffusion predicts 16 actions (10 fit); state BC's chunks hold 8 (10 do not)
    grid = _grid(policies=["diffusion", "bc"], action_steps=10)
    with pytest.raises(ConfigError, match=r"--action-steps for the bc state recipe: "):
        vision.bench_cells(tmp_path, grid)
    vision.check_action_steps(_grid(policies=["diffusion", "bc"], action_steps=8))  # both fit


def _cell(**changes) -> dict:
    cell = dict(task="push", backend="mujoco", policy="bc", observation="state", cameras=[],
                demos=200, steps=20_000, settings=[], episodes=50)  # fmt: skip
    return cell | changes


def test_a_state_cell_evaluated_with_action_steps_has_its_own_plot_line(
    vision: ModuleType,
) -> None:
    assert vision._seen(_cell()) == ""
    assert vision._seen(_cell(action_steps=1)) == " (executes 1)"
    image = _cell(observation="image", cameras=["front"], target_marker_m=0.02)
    assert vision._seen(image) == " (front, 2 cm target)"
    assert vision._seen(image | {"action_steps": 1}) == " (front, 2 cm target, executes 1)"


def test_the_plot_draws_a_recipes_latest_run_and_a_gpu_training_apart(
    vision: ModuleType,
) -> None:
    """A rerun of a recipe (appended after it) replaces the earlier run in the plot, where both
    drew a point at the same demonstrations on one line; a cell trained on a GPU is its own
    line; a screening row of fewer episodes is not drawn."""
    first, rerun = _cell(successes=[1] * 50), _cell(successes=[1, 0] * 25)
    cuda = _cell(settings=["--device", "cuda"], successes=[0] * 50)
    screening = _cell(episodes=10, successes=[1] * 10)
    assert vision.plotted_cells([first, cuda, rerun, screening]) == [rerun, cuda]
    assert vision._seen(cuda) == " (trained on cuda)"


def test_the_plot_is_written_beside_its_results(vision: ModuleType, tmp_path: Path) -> None:
    """Before: ``plot`` reused its ``results`` path's name for a line's evaluations and failed
    with an AttributeError after drawing."""
    import json

    results = tmp_path / "cells.json"
    cells = [_cell(demos=100, successes=[1, 0] * 25), _cell(successes=[1] * 50)]
    results.write_text(json.dumps({"cells": cells}))
    vision.plot(results)
    assert (tmp_path / "cells.png").stat().st_size > 0


def test_a_crop_of_one_camera_trains_apart_and_says_which_camera(vision: ModuleType) -> None:
    """A crop cut from ``front`` only (``--policy.image-crop-keys``) is another run directory
    and plot line than the same crop on every camera; a crop without keys keeps the name its
    earlier runs have (so they resume)."""
    crop = ["--policy.image-crop", "46", "20", "40", "56"]
    keyed = [*crop, "--policy.image-crop-keys", "rgb_front", "--save-every", "1000"]
    cameras = ("front", "wrist")

    def run(settings: list[str]) -> str:
        return vision.run_dir(Path("w"), "pick_place", "mujoco", "bc", "image", cameras, 200,
                              10_000, (), tuple(settings)).name  # fmt: skip

    marker = f"marker{vision.MARKER_RADIUS}"
    assert run(crop) == f"pick_place_mujoco_bc_rgb_front_wrist_{marker}_crop46-20-40-56_200_10000"
    assert run(keyed) != run(crop) and "crop46-20-40-56-rgb_front_" in run(keyed)
    image = _cell(observation="image", cameras=list(cameras), target_marker_m=0.025)
    assert vision._seen(image | {"settings": keyed}) == (
        " (front+wrist, 2.5 cm target, crop 40x56 of front)"
    )
    assert vision._seen(image | {"settings": crop}) == " (front+wrist, 2.5 cm target, crop 40x56)"


def test_recorded_cameras_feed_image_cells_only_and_their_rows_name_the_recording(
    vision: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--recorded-cameras front wrist`` with ``--cameras wrist``: the image cell reads the
    ``front wrist`` recording and its row says so; a state cell of the same grid reads the
    recording without cameras (none recorded for it) and its row names none."""
    read: list[tuple[str, ...]] = []

    def demos(_work, _task, _backend, _episodes, cameras=()):
        read.append(tuple(cameras))
        return tmp_path / "demos.zarr"

    monkeypatch.setattr(vision, "demos", demos)
    monkeypatch.setattr(vision, "train", lambda _config: argparse.Namespace(checkpoint="ck"))
    monkeypatch.setattr(vision, "evaluated", lambda *_args: {})
    rows = {
        observation: vision.run_cell(tmp_path, "pick_place", "mujoco", "bc", observation, 1, 1,
                                     (), 1, ["wrist"], recorded_cameras=("front", "wrist"))
        for observation in ("image", "state")
    }  # fmt: skip
    assert read == [("front", "wrist"), ()]
    assert rows == {"image": {"recorded_cameras": ["front", "wrist"]}, "state": {}}
    vision.run_cell(tmp_path, "pick_place", "mujoco", "bc", "image", 1, 1, (), 1, ["wrist"])
    assert read[-1] == ("wrist",)  # default: the cameras it observes


def test_a_cell_trained_on_a_gpu_trains_apart_and_train_only_evaluates_nothing(
    vision: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--device cuda`` or another image encoder in the settings is another run directory,
    and a resnet encoder another plot line (``--device cpu`` is the CPU's own);
    ``--train-only`` trains the grid's cell and neither evaluates nor records it."""

    def run(settings: list[str]) -> str:
        return vision.run_dir(Path("w"), "push", "mujoco", "bc", "image", ("front",), 100,
                              10_000, (), tuple(settings)).name  # fmt: skip

    assert run(["--device", "cuda:0"]).endswith("_cuda0_100_10000")
    assert run(["--device", "cpu"]) == run([])
    # the last --policy.image-encoder counts, as in the training config; conv is the recipes'
    resnet = ["--policy.image-encoder", "conv", "--policy.image-encoder", "resnet"]
    assert run([*resnet, "--device", "cuda"]).endswith("_resnet_cuda_100_10000")
    assert run(["--policy.image-encoder", "conv"]) == run([])
    image = _cell(observation="image", cameras=["front"], target_marker_m=0.025)
    assert vision._seen(image | {"settings": resnet}) == " (front, 2.5 cm target, resnet encoder)"
    trained: list[tuple] = []
    monkeypatch.setattr(vision, "train_cell", lambda *args: trained.append(args))
    for stage in ("run_cell", "evaluated", "save_cell"):
        monkeypatch.setattr(vision, stage, lambda *_args, stage=stage: pytest.fail(f"{stage} ran"))
    vision.bench_cells(tmp_path, _grid(train_only=True, extra=["--device", "cuda"],
                                       results=tmp_path / "vision.json"))  # fmt: skip
    assert [args[3] for args in trained] == ["bc"] and "cuda" in trained[0][7]


def test_a_checkpoint_at_the_end_of_its_schedule_is_not_marked_partial(
    vision: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--partial`` evaluates the latest saved checkpoint; only one short of the schedule is
    a partial row (a finished run trained elsewhere is a whole one)."""
    settings = ["--device", "cuda"]
    out = vision.run_dir(tmp_path, "push", "mujoco", "bc", "state", (), 1, 100, (),
                         tuple(settings))  # fmt: skip
    evaluated: list[Path] = []
    monkeypatch.setattr(vision, "evaluated", lambda checkpoint, *_args: evaluated.append(
        checkpoint) or {"successes": [1, 0]})  # fmt: skip
    rows: list[dict] = []
    monkeypatch.setattr(vision, "save_cell", lambda cell, _results: rows.append(cell))
    key = ("push", "mujoco", "bc", "state", [], 1, 100, settings, [], None, 50, None)
    for saved in ("step_0000050", "step_0000100"):
        (out / "checkpoints" / saved).mkdir(parents=True)
        vision.partial_cell(tmp_path, key, ["front"], 100, tmp_path / "vision.json")
    assert [path.name for path in evaluated] == ["step_0000050", "step_0000100"]
    assert rows == [{"successes": [1, 0], "partial": True, "schedule_steps": 100},
                    {"successes": [1, 0]}]  # fmt: skip
