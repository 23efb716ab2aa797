"""The commands the repository's pages quote are ones today's code accepts: a flag renamed or
a launch argument dropped in the code must not leave the pages teaching a command that fails.

Every ``robot-il ...`` parses with the CLI's own parser (a train family's settings with that
family's config, as ``robot-il train`` reads them), every ``robot-il launch FILE name:=value``
names a file of ``launch/`` whose tree declares those arguments, and every
``benchmarks/<script>.py ...`` (also quoted as ``<script>.py ...``) parses with that script's
own argparse. Nothing runs: each parser stops the command once it has read the arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import itertools
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from robot_il.cli import build_parser
from robot_il.errors import RobotILError

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "benchmarks/README.md", "data/README.md")
BENCHMARKS = ROOT / "benchmarks"
PLACEHOLDER = "<placeholder>"
"""What a quoted placeholder (``D``, ``CKPT``, ``N``, ``<a run's state>``, a flag's ``...``)
becomes: any value parses in its place (its flag's type and choices are not asked), and one
that stands for more arguments (``--expert ...``) is no unknown argument."""

NOT_CHECKED = {
    # Its alternatives replace the subcommand and its flag together: `opt_ail --model-based`,
    # `iq_learn`, `dac` (one token's alternatives would give `opt_ail iq_learn`).
    "benchmarks/opt_ail.py opt_ail --model-based|iq_learn|dac",
}
"""Quoted commands (code spans as written) that no mechanical reading gets right."""


def quoted_text(page: Path) -> Iterator[tuple[int, str]]:
    """Each code span of ``page`` (line breaks inside it read as spaces) and each line of a
    fenced block (less a description after two spaces), with the line it starts on."""
    prose, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            line = ""
        elif fenced:
            yield number, re.split(r"\s{2,}", line.strip())[0]
            line = ""
        prose.append(line)
    text = "\n".join(prose)
    for span in re.finditer(r"`([^`]+)`", text):
        yield text.count("\n", 0, span.start()) + 1, " ".join(span.group(1).split())


def alternatives(text: str) -> list[str]:
    """``text`` once per spelled-out alternative: ``(A | B)`` is A or B, and in ``robot-il data
    info | validate`` each alternative after the first replaces the first one's last word."""
    group = re.search(r"\(([^()]*\|[^()]*)\)", text)
    if group:
        return [variant for choice in group.group(1).split("|")
                for variant in alternatives(text[: group.start()] + choice.strip()
                                            + text[group.end() :])]  # fmt: skip
    first, *others = text.split(" | ")
    stem = first.rsplit(" ", 1)[0]
    return [first] + [f"{stem} {other}" for other in others]


def is_benchmark(word: str) -> bool:
    """``benchmarks/X.py``, or ``X.py`` alone, naming a script the pages mean as benchmarks'
    (a path elsewhere, ``policies/dmp/selection.py``, is not one)."""
    name = word.removeprefix("benchmarks/")
    return name.endswith(".py") and "/" not in name and (BENCHMARKS / name).is_file()


def command_words(words: list[str]) -> list[str] | None:
    """The command in ``words``, from its program on, or None: ``robot-il`` (any path to it;
    ``ros2 launch robot_il F`` and a span opening with a launch file read as ``robot-il launch
    F``) or a benchmark script (its path as the first word; ``python`` before it dropped)."""
    for index, word in enumerate(words):
        if word == "robot-il" or word.endswith("/robot-il"):
            return ["robot-il", *words[index + 1 :]]
        if re.fullmatch(r"benchmarks/[\w/]+\.py", word) or is_benchmark(word):
            return [word, *words[index + 1 :]]
        if words[index : index + 3] == ["ros2", "launch", "robot_il"]:
            return ["robot-il", "launch", *words[index + 3 :]]
    if words and re.fullmatch(r"[\w/]+\.launch\.yaml", words[0]):
        return ["robot-il", "launch", *words]
    return None


def placeholders_marked(words: list[str]) -> list[str]:
    """``words`` with each placeholder as :data:`PLACEHOLDER`: an upper-case name (``D``,
    ``CKPT``, ``IP1``), an ellipsis after a flag (its value) and the value of a flag that ends
    the command (``opt_ail_speed.py --state`` names the flag); an ellipsis anywhere else ("and
    more") is dropped."""
    marked: list[str] = []
    for word in words:
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", word):
            marked.append(PLACEHOLDER)
        elif word in ("...", "…"):
            if marked and marked[-1].startswith("-"):
                marked.append(PLACEHOLDER)
        else:
            marked.append(word)
    if marked[-1].startswith("-") and "=" not in marked[-1]:
        marked.append(PLACEHOLDER)
    return marked


def quoted_commands(text: str) -> list[list[str]]:
    """The commands quoted in one code span or block line, one per alternative: ``a|b`` in a
    word, ``(A | B)``, ``info | validate``; ``[...]`` brackets dropped, their contents kept."""
    text = re.sub(r"<[^>]*>", PLACEHOLDER, text.replace("\\|", "|"))
    found = []
    for variant in alternatives(text.replace("[", " ").replace("]", " ")):
        for segment in re.split(r"\s(?:&&|;)\s", variant):
            command = command_words(shlex.split(segment))
            if command is None:
                continue
            choices = [word.split("|") if "|" in word and "=" not in word else [word]
                       for word in command]  # fmt: skip
            found += [placeholders_marked(list(words)) for words in itertools.product(*choices)]
    return found


PARSE_KNOWN_ARGS = argparse.ArgumentParser.parse_known_args
ORIGINAL_PARSER_METHODS = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error
"""argparse's own methods, which :func:`parsers_stop_after` replaces while a check runs."""


class ChoicesOrPlaceholder(list):
    """An argument's choices that also hold :data:`PLACEHOLDER` (argparse's message lists
    only the real ones)."""

    def __contains__(self, value: object) -> bool:
        return value == PLACEHOLDER or super().__contains__(value)


class Accepted(Exception):
    """A parser read the quoted arguments: the command stops before any work."""


class Refused(Exception):
    """A parser refused the quoted arguments (its message)."""


def relax(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` (and its sub-parsers) read a command quoted in part: no argument is
    required (``robot-il eval --ros`` names no ``--checkpoint``), and :data:`PLACEHOLDER`
    passes any type and choices."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.required = False
            for sub_parser in action.choices.values():
                relax(sub_parser)
            continue
        if action.option_strings:
            action.required = False
        elif action.nargs in (None, "+"):
            action.nargs = {None: "?", "+": "*"}[action.nargs]
        if callable(action.type):
            action.type = placeholder_or(action.type)
        if action.choices is not None:
            action.choices = ChoicesOrPlaceholder(action.choices)
    for group in parser._mutually_exclusive_groups:
        group.required = False


def placeholder_or(convert: Callable[[str], object]) -> Callable[[str], object]:
    """``convert`` (an argparse ``type``, its name kept for argparse's messages) that lets
    :data:`PLACEHOLDER` through."""

    @functools.wraps(convert)
    def parse(text: str) -> object:
        return text if text == PLACEHOLDER else convert(text)

    return parse


def parse_quoted(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` read by ``parser`` relaxed; an unknown argument or a value its flag refuses is
    :class:`Refused` (placeholders that stand for more arguments are let through)."""
    relax(parser)
    try:
        namespace, unknown = PARSE_KNOWN_ARGS(parser, argv)
    except SystemExit:  # `-h`: a flag that exists
        raise Accepted from None
    unknown = [word for word in unknown if word != PLACEHOLDER]
    if unknown:
        raise Refused(f"unrecognized arguments: {' '.join(unknown)}")
    return namespace


@contextlib.contextmanager
def parsers_stop_after(argv: list[str]) -> Iterator[None]:
    """Every argparse parser built inside reads ``argv`` (a script's ``parse_args()``), or what
    it is given, and stops the command (:class:`Accepted`) or refuses it (:class:`Refused`)."""

    def parse_args(self, args=None, namespace=None):
        parse_quoted(self, argv if args is None else list(args))
        raise Accepted

    def error(self, message):
        raise Refused(message)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error
    argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error = parse_args, error
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error = saved


def check_launch(name: str, items: list[str]) -> None:
    """``name`` is a launch file of ``launch/`` whose tree declares every ``key:=value`` of
    ``items`` (loaded as ``robot-il launch`` loads it; required arguments quoted elsewhere)."""
    from robot_il.cli.launch import parse_arguments
    from robot_il.launch import declared_arguments, load_launch

    if name == PLACEHOLDER:
        return
    path = ROOT / name if "/" in name else ROOT / "launch" / name
    if not path.is_file():
        raise Refused(f"no launch file {path.relative_to(ROOT)}")
    required = {argument.name: "x" for argument in declared_arguments(path)
                if argument.default is None}  # fmt: skip
    load_launch(path, required | parse_arguments(items))


def check_training(args: argparse.Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """``robot-il train``'s settings, read as it reads them: ``dmp`` and ``dmp-rl`` by their
    parsers, the other families by their config (tyro; a ``--config`` file quoted as an example
    is not read, a placeholder value is 1)."""
    import robot_il.train.config
    from robot_il.cli import train

    load_config = robot_il.train.config.load_config

    def config_read(policy_type, yaml_file=None, args=()):
        values = ["1" if word == PLACEHOLDER else word for word in args]
        example = yaml_file is not None and not Path(yaml_file).is_file()
        with parsers_restored():
            load_config(policy_type, None if example else yaml_file, values)
        raise Accepted

    monkeypatch.setattr(robot_il.train.config, "load_config", config_read)
    with parsers_stop_after([]):
        train.run(args)


@contextlib.contextmanager
def parsers_restored() -> Iterator[None]:
    """argparse as it is, for a library (tyro) that may use it inside a check."""
    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error
    argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error = ORIGINAL_PARSER_METHODS
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error = saved


def check_robot_il(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``robot-il`` with ``argv``: the verb, sub-verb and flags exist and their values parse."""
    with parsers_stop_after(argv):
        args = parse_quoted(build_parser(argv), argv)
    if args.verb == "launch" and args.file is not None:
        check_launch(args.file, args.arguments)
    elif args.verb == "train" and args.policy_type not in (None, PLACEHOLDER):
        with contextlib.suppress(Accepted):
            check_training(args, monkeypatch)


def check_benchmark(script: str, argv: list[str]) -> None:
    """``benchmarks/<script>`` exists and its own parser reads ``argv`` (the scripts import
    their siblings: see :func:`benchmarks_importable`)."""
    path = BENCHMARKS / script.removeprefix("benchmarks/")
    if not path.is_file():
        raise Refused(f"no script {path.relative_to(ROOT)}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with parsers_stop_after(argv), contextlib.suppress(Accepted):
        module.main()
        raise Refused("its main() read no arguments")


def refusal(command: list[str], monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Why ``command`` would be refused, or None if it would be accepted."""
    program, *argv = command
    try:
        if program == "robot-il":
            check_robot_il(argv, monkeypatch)
        else:
            check_benchmark(program, argv)
    except (Refused, RobotILError) as error:
        return str(error)
    return None


@pytest.fixture
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``benchmarks/`` on the import path, as running a script puts it (``from policies
    import ...``); afterwards the scripts imported so are forgotten, so that no other test
    finds ``policies`` or ``opt_ail`` as top-level modules."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == BENCHMARKS:
            del sys.modules[name]


def test_quoted_commands_read_placeholders_brackets_and_alternatives():
    assert quoted_commands("robot-il train bc|diffusion --dataset D [--steps N] ...") == [
        ["robot-il", "train", "bc", "--dataset", PLACEHOLDER, "--steps", PLACEHOLDER],
        ["robot-il", "train", "diffusion", "--dataset", PLACEHOLDER, "--steps", PLACEHOLDER],
    ]
    assert quoted_commands("robot-il data drop-episode PATH E [E ...] (--force | --out NEW)") == [
        ["robot-il", "data", "drop-episode", *[PLACEHOLDER] * 3, "--force", PLACEHOLDER],
        ["robot-il", "data", "drop-episode", *[PLACEHOLDER] * 3, "--out", PLACEHOLDER],
    ]
    assert quoted_commands("robot-il data info | export --zarr-format 2") == [
        ["robot-il", "data", "info"],
        ["robot-il", "data", "export", "--zarr-format", "2"],
    ]
    assert quoted_commands("bash scripts/install.sh && .venv/bin/robot-il demo") == [
        ["robot-il", "demo"]
    ]
    assert quoted_commands("python benchmarks/x.py --state <a run's state> --cells ...") == [
        ["benchmarks/x.py", "--state", PLACEHOLDER, "--cells", PLACEHOLDER]
    ]
    assert quoted_commands("opt_ail.py bc --task T") == [
        ["opt_ail.py", "bc", "--task", PLACEHOLDER]
    ]
    assert quoted_commands("policies/dmp/selection.py") == []
    assert quoted_commands("deploy_sim.launch.yaml checkpoint:=CKPT") == [
        ["robot-il", "launch", "deploy_sim.launch.yaml", "checkpoint:=CKPT"]
    ]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("robot-il record --task reach --episodes many", "invalid int value: 'many'"),
        ("robot-il data inspect PATH", "invalid choice: 'inspect'"),
        ("robot-il train bc --dataset D --policy.horizons 16", "--policy.horizons"),
        ("robot-il train dmp --dataset D --search grid", "invalid choice: 'grid'"),
        ("robot-il launch deploy_sim.launch.yaml robot_ip:=IP", "unknown launch argument"),
        ("robot-il launch deploy_moon.launch.yaml", "no launch file launch/deploy_moon"),
        ("benchmarks/selection.py --no-such-flag", "unrecognized arguments: --no-such-flag"),
        # as the pages quoted it before the report moved to opt_ail_report.py
        ("opt_ail.py table --task ur5e:push", "argument part: invalid choice: 'table'"),
        ("benchmarks/faster.py", "no script benchmarks/faster.py"),
    ],
)
def test_a_command_the_code_no_longer_takes_is_refused(
    command, reason, monkeypatch, benchmarks_importable
):
    (quoted,) = quoted_commands(command)
    assert reason in (refusal(quoted, monkeypatch) or "accepted")


@pytest.mark.parametrize("name", PAGES)
def test_every_quoted_command_is_accepted(name, monkeypatch, benchmarks_importable):
    stale = []
    for line, text in quoted_text(ROOT / name):
        if text in NOT_CHECKED:
            continue
        for command in quoted_commands(text):
            if (reason := refusal(command, monkeypatch)) is not None:
                stale.append(f"{name}:{line}: `{text}`: {reason}")
    assert not stale, "quoted commands the code refuses:\n" + "\n".join(stale)
