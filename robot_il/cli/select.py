"""``robot-il select``: choose among trained policies from a (simulated) person's feedback.

- ``robot-il select candidates --out DIR [--dataset D]`` trains candidate checkpoints of
  different quality from one expert dataset (:mod:`robot_il.select.candidates`; recorded
  first when no dataset is given), reusing those already trained.
- ``robot-il select sim --out DIR [--dataset D | --candidates A,B,C] [--episodes N]`` does
  that (or takes the given checkpoint directories), then runs
  ``deploy_select_sim.launch.yaml``: the selector deploys a candidate per episode on the
  simulated UR5e and the episode judge rates the real rollouts. It prints a table of the
  candidates and the winner, and plots which candidate each episode deployed. Camera
  candidates (``rgb_<camera>``; state ones beside them) share the one simulated camera, which
  renders at their frame size: candidates of different cameras or sizes are refused.

The selection's state, ``--out/selection.json``, is written after every rating: the same
command run again (after Ctrl-C, or with more ``--episodes``) goes on from it, on the env seeds
an uninterrupted run would have used; ``--fresh`` starts over. A state of other candidates,
rule or seed is refused before anything is trained or launched; one whose candidates were
retrained since it was written is set aside, its ratings being of other weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from robot_il.errors import SelectionError

if TYPE_CHECKING:
    from robot_il.select import Selector

STATE_FILE = "selection.json"
"""The selector's state file inside ``--out``: the episode log the summary is made from."""
CORRECTIONS = "corrections.zarr"
"""With ``--takeover``: the corrections dataset inside ``--out``."""
FINETUNED = "finetuned"
"""With ``--takeover``: the folder of the fine-tuned checkpoints inside ``--out``."""


def configure(parser: argparse.ArgumentParser) -> None:
    from robot_il.cli.flags import COUNT, DOMAIN_ID, PORT, SEED
    from robot_il.record.teleop import TELEOP_DEVICES
    from robot_il.select.rules import RULES

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    candidates = commands.add_parser("candidates", help="train candidates of different quality")
    sim = commands.add_parser("sim", help="select among candidates on the simulated robot")
    for sub in (candidates, sim):
        sub.add_argument(
            "--out",
            type=Path,
            required=True,
            help=f"results folder: the trained candidates and their demonstrations (demos/), "
            f"and for sim the selection ({STATE_FILE}, selection.png)",
        )
        sub.add_argument("--dataset", type=Path, default=None, help="expert reach dataset")
        sub.add_argument(
            "--record",
            type=int,
            default=None,
            help="expert demonstrations to record when no --dataset is given (default: as "
            "many as the recipes use)",
        )
    candidates.set_defaults(run=run_candidates)
    sim.add_argument(
        "--candidates",
        default=None,
        help="comma-separated checkpoint directories to select among, instead of training; "
        "the simulated scene is their task",
    )
    sim.add_argument("--episodes", type=COUNT, default=20, help="rated episodes (default 20)")
    sim.add_argument("--rule", default="ucb1", choices=tuple(RULES), help="selection rule")
    sim.add_argument("--seed", type=SEED, default=0, help="seed of the selector and the judge")
    sim.add_argument(
        "--env-seed",
        type=SEED,
        default=10_000,
        help="env seed of the first episode (default 10000: held out from the demonstrations, "
        "as robot-il eval)",
    )
    sim.add_argument(
        "--default-candidate", default=None, help="deployed first (default: the second)"
    )
    sim.add_argument(
        "--web",
        action="store_true",
        help="serve the feedback page, where you rate each episode (the selection waits for "
        "your rating; the simulated person then only stops unsafe episodes)",
    )
    sim.add_argument(
        "--port",
        type=PORT,
        default=0,
        help="with --web: the page's port on 127.0.0.1 (default 0: any free one; a fixed one "
        "for an SSH tunnel, ssh -L 8080:127.0.0.1:8080)",
    )
    sim.add_argument(
        "--camera",
        default=None,
        help="with --web: the simulated camera the feedback page shows (default: the one the "
        'camera candidates observe, else front; "" for none: rendering is software here and '
        "slows the simulation)",
    )
    sim.add_argument(
        "--takeover",
        action="store_true",
        help="correct the candidates yourself: moving the teleop device (--device) takes the "
        "arm over (the episode counts as intervened), the Right arrow hands it back; each "
        f"takeover is recorded into --out/{CORRECTIONS} and the candidates are fine-tuned on "
        f"the corrections (into --out/{FINETUNED}; mixed with the demonstrations the default "
        "candidates were trained on)",
    )
    sim.add_argument(
        "--device",
        default=None,
        # "ros" reads teleop/twist, which the teleop node itself publishes
        choices=[device for device in TELEOP_DEVICES if device != "ros"],
        help="with --takeover: the teleop device (default keyboard: this terminal)",
    )
    sim.add_argument(
        "--fresh",
        action="store_true",
        help=f"start a new selection, discarding the ratings in --out/{STATE_FILE} (without "
        "it, a selection under way there goes on)",
    )
    sim.add_argument("--domain-id", type=DOMAIN_ID, default=None, help="ROS_DOMAIN_ID (0..101)")
    sim.set_defaults(run=run_sim)


def prepare_candidates(out: Path, dataset: Path | None, record: int | None) -> list[Path]:
    """The default candidates under ``out``, trained from ``dataset`` (or from expert demos
    recorded into ``out/demos`` first, a recording stopped there going on to its count);
    cached ones are reused."""
    from robot_il.select.candidates import make_candidates

    try:
        return make_candidates(candidates_dataset(out, dataset, record), out, progress=True)
    except KeyboardInterrupt:
        print(f"[select] stopped while preparing the candidates; the demonstrations recorded "
              f"and the candidates trained so far are kept in {out}: the same command goes on "
              "from them", file=sys.stderr, flush=True)  # fmt: skip
        raise


def candidates_dataset(out: Path, dataset: Path | None, record: int | None) -> Path:
    """The demonstrations the default candidates train on: ``dataset``, else the expert's in
    ``out/demos``, recorded (or, stopped before, recorded on) to :func:`recorded_demos`'
    count."""
    if dataset is not None:
        return dataset
    from robot_il.train.demos import record_expert_demos

    held, wanted = recorded_demos(out, record)
    if held >= wanted:
        return recipes_dataset(out, None)
    after = f" (going on after the {held} recorded)" if held else ""
    print(f"[select] recording {wanted} expert reach demonstrations{after}", flush=True)
    return record_expert_demos("reach", out / "demos", episodes=wanted, progress=True, resume=True)


def recorded_demos(out: Path, record: int | None) -> tuple[int, int]:
    """The expert episodes the recording in ``out/demos`` holds (committed) and those it is to
    hold: ``record``, else as many as the recipes use (or the more it holds). A recording a
    Ctrl-C stopped goes on to that count: its episodes trained the candidates of an
    uninterrupted run's names, silently fewer, before. ``SelectionError`` for a ``record``
    below what it holds (the recording is not cut)."""
    from robot_il.select.candidates import RECIPE_DEMOS
    from robot_il.train.demos import committed_recording

    path = recipes_dataset(out, None)
    recording = committed_recording(path)
    held = 0 if recording is None else recording.num_episodes
    if record is not None and held > record:
        raise SelectionError(f"--record {record}: {path} holds {held} expert demonstrations "
                             f"already; pass --record {held} (or leave it out), or another "
                             "--out")  # fmt: skip
    return held, max(held, record or RECIPE_DEMOS)


def recipes_dataset(out: Path, dataset: Path | None) -> Path:
    """The demonstrations the default candidates are trained on: ``dataset``, else those
    recorded into ``out/demos``."""
    return dataset if dataset is not None else out / "demos" / "env.zarr"


def default_candidate_names(out: Path, dataset: Path | None, record: int | None) -> list[str]:
    """The names ``prepare_candidates`` gives its candidates, known before it records or
    trains anything: each default recipe's name for the episodes the dataset holds, or will
    hold once recorded (the recording keeps exactly the episodes it asks for)."""
    from robot_il.select.candidates import DEFAULT_RECIPES

    if dataset is not None:
        from robot_il.dataset import Dataset

        available = Dataset.open(dataset).num_episodes
    else:
        available = recorded_demos(out, record)[1]
    return [recipe.name(available) for recipe in DEFAULT_RECIPES]


def run_candidates(args: argparse.Namespace) -> int:
    from robot_il.cli.flags import refuse_file_out

    refuse_file_out(args.out, "the candidates")
    for checkpoint in prepare_candidates(args.out, args.dataset, args.record):
        print(checkpoint)
    return 0


def candidates_task(names: list[str]) -> str:
    """The task every checkpoint of ``names`` was trained on, the scene the simulated robot
    shows them all; ``SelectionError`` if they differ."""
    from robot_il.policies import read_checkpoint

    tasks = {name: read_checkpoint(name)[1]["spec"].get("task") or "reach" for name in names}
    if len(set(tasks.values())) > 1:
        trained = ", ".join(f"{Path(name).name} on {task}" for name, task in tasks.items())
        raise SelectionError(f"--candidates: trained on different tasks ({trained}); one "
                             "simulated scene judges them all")  # fmt: skip
    return next(iter(tasks.values()))


def candidates_rate(names: list[str]) -> float:
    """The rate (Hz) every checkpoint of ``names`` acts at, which corrections are recorded at;
    ``SelectionError`` if they differ (one policy node runs them all on one grid)."""
    from robot_il.policies import read_checkpoint

    rates = {name: float(read_checkpoint(name)[1]["spec"]["control_hz"]) for name in names}
    if len(set(rates.values())) > 1:
        acting = ", ".join(f"{Path(name).name} at {hz:g} Hz" for name, hz in rates.items())
        raise SelectionError(f"candidates act at different rates ({acting}); one policy node "
                             "runs them on one grid")  # fmt: skip
    return next(iter(rates.values()))


def candidates_camera(names: list[str]) -> tuple[str, tuple[int, int]] | None:
    """The colour camera and frame size [H, W] (px) the camera candidates of ``names`` observe
    (None if none observes one): the simulator renders that one camera at that size, as
    ``robot-il eval`` renders it for each, and the policy node serves it to every candidate.
    ``SelectionError`` naming the candidates whose cameras or frame sizes disagree, or one
    that observes more than one camera or a depth camera, before anything launches."""
    from robot_il.policies import read_checkpoint
    from robot_il.ros.observation import is_camera_key

    seen: dict[str, tuple[str, tuple[int, int]]] = {}
    for name in names:
        observation = read_checkpoint(name)[1]["spec"].get("observation") or {}
        cameras = [key for key in observation if is_camera_key(key)]
        if len(cameras) > 1 or any(not key.startswith("rgb_") for key in cameras):
            raise SelectionError(f"--candidates: {Path(name).name} observes "
                                 f"{', '.join(cameras)}; the simulator renders one colour "
                                 "camera (rgb_<name>)")  # fmt: skip
        if cameras:
            shape = observation[cameras[0]]
            seen[name] = (cameras[0].removeprefix("rgb_"), (int(shape[0]), int(shape[1])))
    if len(set(seen.values())) > 1:
        observed = ", ".join(f"{Path(name).name} rgb_{camera} {size[0]}x{size[1]}"
                             for name, (camera, size) in seen.items())  # fmt: skip
        raise SelectionError(f"--candidates: observe different cameras or frame sizes "
                             f"({observed}); the simulator renders one camera at one size for "
                             "them all")  # fmt: skip
    return next(iter(seen.values()), None)


def shown_camera(camera: str | None, observed: str | None) -> str:
    """The camera the feedback page shows (``--camera``, default: ``observed``, the camera
    candidates', else front; "" none); ``SelectionError`` for another camera than
    ``observed``: the simulator renders one."""
    if camera is None:
        return observed or "front"
    if observed and camera not in ("", observed):
        raise SelectionError(f"--camera {camera}: the candidates observe {observed}, the one "
                             "camera the simulator renders; the page shows it (leave --camera "
                             "out)")  # fmt: skip
    return camera


def check_loadable(names: list[str]) -> None:
    """``SelectionError`` naming every checkpoint of ``names`` that does not load: the policy
    node would try it for a minute per episode and count it as a failure, or, as the default
    candidate, stop the launch."""
    from robot_il.errors import CheckpointError
    from robot_il.policies import load_policy

    broken = []
    for name in names:
        try:
            load_policy(name)
        except CheckpointError as error:
            broken.append(str(error))
    if broken:
        raise SelectionError(f"--candidates: not loadable: {'; '.join(broken)}")


def resumable(state: Path, names: list[str], rule: str, default: str, seed: int) -> Selector | None:
    """The selection under way in ``state`` (None if there is none), which must be of
    ``names`` with ``rule`` (and ``default`` for conservative_ucb) and ``seed``;
    ``SelectionError`` saying what differs, before anything is trained or launched."""
    from robot_il.select import Selector

    if not state.exists():
        return None
    try:
        selector = Selector.load(state)
    except SelectionError as error:
        raise SelectionError(f"{error}; mend it, or pass --fresh to start a new selection "
                             "(that deletes it)") from None  # fmt: skip
    config = selector.rule.config()
    differs = []
    if selector.candidates != names:
        differs.append(f"candidates {','.join(selector.candidates)}")
    if config["rule"] != rule:
        differs.append(f"--rule {config['rule']}")
    elif rule == "conservative_ucb" and selector.candidates[config["default_arm"]] != default:
        differs.append(f"--default-candidate {selector.candidates[config['default_arm']]}")
    if selector.seed != seed:
        differs.append(f"--seed {selector.seed}")
    if differs:
        raise SelectionError(
            f"{state}: holds a selection of {'; '.join(differs)} ({len(selector.log)} rated "
            "episodes); go on with those, or pass --fresh to start a new one"
        )
    return selector


def check_port_free(port: int) -> None:
    """``SelectionError`` if the feedback page cannot be served on 127.0.0.1:``port`` (taken by
    another program, say), before anything launches: the selection would wait for ratings from
    a page that is not there."""
    from http.server import BaseHTTPRequestHandler

    from robot_il.web import PageServer

    if not port:
        return
    try:
        PageServer(BaseHTTPRequestHandler, host="127.0.0.1", port=port, name="feedback page",
                   error=SelectionError).close()  # fmt: skip
    except SelectionError as error:
        raise SelectionError(f"--port {port}: {error} (another --port, or 0 for any free "
                             "one)") from None  # fmt: skip


def candidate_directory(path: str) -> Path:
    """The checkpoint directory a candidate names, absolute: itself, or the checkpoint of a
    training run's ``--out`` (its ``policy/``), as every other command takes it."""
    from robot_il.policies import DEPLOY_SUBDIR

    directory = Path(path).resolve()
    deployed = directory / DEPLOY_SUBDIR
    if not (directory / "config.json").is_file() and (deployed / "config.json").is_file():
        return deployed
    return directory


def retrained_since(state: Path, checkpoints: list[Path]) -> list[str]:
    """The checkpoints saved after ``state`` was last written: its ratings are of other
    weights."""
    written = state.stat().st_mtime
    return [str(c) for c in checkpoints if (c / "config.json").stat().st_mtime > written]


def run_sim(args: argparse.Namespace) -> int:
    from robot_il.cli import main
    from robot_il.cli.flags import refuse_file_out
    from robot_il.select import check_budget

    refuse_file_out(args.out, "the selection")
    if not args.web:
        ignored = [flag for flag, value in (("--port", args.port), ("--camera", args.camera))
                   if value not in (None, 0)]  # fmt: skip
        if ignored:
            raise SelectionError(f"{' and '.join(ignored)}: only for the feedback page, which "
                                 "--web serves; add --web or leave it out")  # fmt: skip
    else:
        check_port_free(args.port)
    if args.device is not None and not args.takeover:
        raise SelectionError("--device: only for taking the arm over, which --takeover "
                             "allows; add --takeover or leave it out")  # fmt: skip
    device = args.device or "keyboard"
    if args.takeover and device == "keyboard" and not sys.stdin.isatty():
        raise SelectionError("--takeover with the keyboard reads this terminal, but standard "
                             "input is not one: run it in an interactive shell, or pass "
                             "--device spacemouse or gamepad")  # fmt: skip
    if args.candidates:
        names = [str(candidate_directory(path)) for path in args.candidates.split(",") if path]
        missing = [name for name in names if not (Path(name) / "config.json").is_file()]
        if missing:
            raise SelectionError(f"--candidates: not checkpoint directories: {missing}")
        candidates_dir = ""
        task = candidates_task(names)
        observed = candidates_camera(names)
    else:
        names = default_candidate_names(args.out, args.dataset, args.record)
        candidates_dir = str(args.out.resolve())
        task = "reach"  # the recipes' expert
        observed = None  # the recipes train on state
    shown = shown_camera(args.camera, observed[0] if observed else None)
    default = args.default_candidate or names[min(1, len(names) - 1)]
    if args.candidates:
        default = str(candidate_directory(default))
    if default not in names:
        raise SelectionError(f"--default-candidate {default!r} is not one of {names}")
    check_budget(args.episodes, names, "--episodes")
    state = args.out / STATE_FILE
    if args.fresh:
        state.unlink(missing_ok=True)
    resumed = resumable(state, names, args.rule, default, args.seed)
    if args.candidates:
        check_loadable(names)
    else:  # the flags hold: now record and train what is missing
        prepare_candidates(args.out, args.dataset, args.record)
    checkpoints = [Path(candidates_dir, name) for name in names]  # names may be paths
    if resumed is not None and (retrained := retrained_since(state, checkpoints)):
        print(f"[select] {state}: set aside, {', '.join(retrained)} retrained since its "
              f"{len(resumed.log)} ratings; a new selection starts", flush=True)  # fmt: skip
        state.replace(state.with_name(f"{STATE_FILE}.old"))
        resumed = None
    rated = 0 if resumed is None else len(resumed.log)
    if rated >= args.episodes:
        print(f"[select] {state}: {rated} episodes rated already (--episodes {args.episodes}); "
              "more --episodes go on, --fresh starts over", flush=True)  # fmt: skip
        summarize(state, args.out / "selection.png")
        return 0
    if rated:
        print(f"[select] {state}: going on after {rated} rated episodes", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    argv = ["launch"]
    if args.domain_id is not None:
        argv += ["--domain-id", str(args.domain_id)]
    argv += [
        "deploy_select_sim.launch.yaml",
        f"task:={task}",
        f"candidates_dir:={candidates_dir}",
        f"candidates:={','.join(names)}",
        f"default_candidate:={default}",
        f"episodes:={args.episodes}",
        f"rule:={args.rule}",
        f"seed:={args.seed}",
        # episode N is judged on env seed env_seed + N, resumed or not
        f"env_seed:={args.env_seed + rated}",
        f"state_path:={state.resolve()}",
        f"web:={'true' if args.web else 'false'}",
        f"judge_rates:={'false' if args.web else 'true'}",  # with the page, you rate
        f"port:={args.port}",
    ]
    if observed:  # rendered at the candidates' frame size, served to them by the policy node
        camera, (height, width) = observed
        argv += [f"camera:={camera}", f"image_size:=[{height}, {width}]"]
    if args.takeover:
        argv += [
            "takeover:=true",
            f"device:={device}",
            f"finetune_corrections:={(args.out / CORRECTIONS).resolve()}",
            f"finetune_out:={(args.out / FINETUNED).resolve()}",
            f"record_hz:={candidates_rate([str(c) for c in checkpoints]):g}",
        ]
        if not args.candidates:  # the recipes' demonstrations keep what the candidates learnt
            argv.append(f"finetune_demos:={recipes_dataset(args.out, args.dataset).resolve()}")
    if args.web and shown:  # the person sees the scene they rate
        from robot_il.ros.ur_topics import image_topic

        if not observed:
            argv.append(f"camera:={shown}")
        argv.append(f"camera_topic:={image_topic(shown)}")
    print(f"[select] robot-il {' '.join(argv)}", flush=True)
    if args.web:
        print("[select] rate each episode on the feedback page (its address follows, 'feedback "
              "page: URL'); the selection waits for your rating", flush=True)  # fmt: skip
    code = main(argv)
    if code != 0:
        if state.is_file():
            print(f"[select] stopped; the ratings so far are kept in {state}: the same command "
                  "goes on from them", flush=True)  # fmt: skip
        return code
    summarize(state, args.out / "selection.png")
    return 0


def summarize(state: Path, plot: Path) -> str:
    """Print the candidates' statistics and the winner from the selector's state file, plot
    the candidate deployed in each episode; returns the winner."""
    from robot_il.select import Selector

    if not state.is_file():
        raise SelectionError(f"{state}: the selection left no state file")
    selector = Selector.load(state)
    statistics = selector.statistics()
    width = max(len("candidate"), *(len(name) for name in selector.candidates)) + 2
    print(f"\n{'candidate':<{width}}{'episodes':>9}{'mean rating':>13}{'interventions':>15}")
    for row in statistics["candidates"]:
        mean = "-" if row["mean_rating"] is None else f"{row['mean_rating']:.3f}"
        print(f"{row['name']:<{width}}{row['plays']:>9}{mean:>13}{row['interventions']:>15}")
    winner = statistics["best"]
    print(f"winner after {statistics['episodes']} episodes: {winner}")
    _plot_choices(selector, plot)
    print(f"plot of the choices: {plot}")
    return winner


def choices_figure(selector):
    """Which candidate each episode deployed, coloured by its rating (colour bar beside; red x:
    intervention), episodes in whole numbers: a matplotlib ``Figure``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * max(len(selector.candidates), 3)))
    for record in selector.log:
        marker = "x" if record.intervened else "o"
        color = "tab:red" if record.intervened else plt.cm.viridis(record.rating)
        ax.scatter(record.episode, record.arm, marker=marker, color=color)
    ax.set_yticks(range(len(selector.candidates)), selector.candidates)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no episode 1.5
    ax.set_xlabel("episode")
    ax.set_title("candidate deployed per episode (colour: rating, x: intervention)")
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), "viridis"), ax=ax, label="rating")
    fig.tight_layout()
    return fig


def _plot_choices(selector, path: Path) -> None:
    """Write :func:`choices_figure` to ``path``."""
    import matplotlib.pyplot as plt

    fig = choices_figure(selector)
    fig.savefig(path, dpi=100)
    plt.close(fig)
