"""The Selector: feedback checks, durable state, and resuming after SIGKILL."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from robot_il.errors import FeedbackError, RobotILError, SelectionError
from robot_il.select import UCB1, ConservativeUCB, EpsilonGreedy, Selector

CANDIDATES = ["ckpt/bc_a", "ckpt/bc_b", "ckpt/diffusion"]


def test_choose_feedback_cycle_updates_statistics(tmp_path):
    selector = Selector.create(CANDIDATES, UCB1(), seed=0, state_path=tmp_path / "s.json")
    seen = set()
    for _ in range(3):
        choice = selector.choose()
        seen.add(choice.candidate)
        selector.feedback(choice.episode, 0.25 * choice.arm)
    assert seen == set(CANDIDATES)  # UCB1 plays every candidate once first
    choice = selector.choose()
    selector.intervene(choice.episode)
    stats = selector.statistics()
    assert stats["episodes"] == 4 and stats["pending"] is None
    assert sum(c["plays"] for c in stats["candidates"]) == 4
    assert sum(c["interventions"] for c in stats["candidates"]) == 1
    json.dumps(stats)


@pytest.mark.parametrize(
    ("episode", "rating", "message"),
    [
        (0, 1.5, "episode 0: rating 1.5 is not in [0, 1]"),
        (0, -0.01, "episode 0: rating -0.01 is not in [0, 1]"),
        (0, math.nan, "episode 0: rating nan is not in [0, 1]"),
        (0, math.inf, "episode 0: rating inf is not in [0, 1]"),
        (0, "good", "episode 0: rating 'good' is not a number"),
        (0, True, "episode 0: rating True is not a number"),
        (7, 0.5, "episode 7 is unknown (episode 1 is open)"),
        (-1, 0.5, "episode -1 is unknown"),
        (0, 0.5, "episode 0 was already rated"),
    ],
)
def test_bad_feedback_is_rejected_and_nothing_is_lost(tmp_path, episode, rating, message):
    path = tmp_path / "s.json"
    selector = Selector.create(CANDIDATES, UCB1(), seed=0, state_path=path)
    selector.feedback(selector.choose().episode, 0.9)
    selector.choose()
    before = path.read_bytes()
    with pytest.raises(FeedbackError) as error:
        selector.feedback(episode, rating)
    assert isinstance(error.value, RobotILError)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert path.read_bytes() == before
    assert Selector.load(path).state_dict() == selector.state_dict()


def test_feedback_without_open_episode_and_double_choose(tmp_path):
    selector = Selector.create(CANDIDATES, UCB1(), seed=0)
    with pytest.raises(FeedbackError, match=r"episode 0 is unknown \(episode none is open\)"):
        selector.feedback(0, 0.5)
    selector.choose()
    with pytest.raises(SelectionError, match="episode 0 .* is still awaiting feedback"):
        selector.choose()


def test_state_files_are_checked(tmp_path):
    path = tmp_path / "s.json"
    Selector.create(CANDIDATES, UCB1(), state_path=path)
    with pytest.raises(SelectionError, match="already exists"):
        Selector.create(CANDIDATES, UCB1(), state_path=path)
    with pytest.raises(SelectionError, match="is for candidates"):
        Selector.open(path, CANDIDATES[:2], UCB1())
    with pytest.raises(SelectionError, match="is for candidates"):
        Selector.open(path, CANDIDATES, EpsilonGreedy(0.1))
    path.write_text("{not json")
    with pytest.raises(SelectionError, match="s.json is unreadable"):
        Selector.load(path)
    with pytest.raises(SelectionError, match="does not exist"):
        Selector.load(tmp_path / "missing.json")
    with pytest.raises(SelectionError, match="unique"):
        Selector.create(["a", "a"], UCB1())
    state = Selector.create(CANDIDATES, UCB1()).state_dict()
    state["log"] = [{"episode": 0, "arm": 7, "rating": 0.5, "intervened": False}]
    path.write_text(json.dumps(state))
    with pytest.raises(SelectionError, match="s.json is corrupt"):
        Selector.load(path)
    (tmp_path / "file").write_text("")
    with pytest.raises(SelectionError, match="cannot write selector state"):
        Selector.create(CANDIDATES, UCB1(), state_path=tmp_path / "file" / "s.json")


# A deployment loop whose simulated ratings depend only on (episode, arm), so a resumed run
# and an uninterrupted one see the same feedback for the same choices.
DEPLOY_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from robot_il.select import Selector, rule_from_config
    import json
    path, episodes, rule = sys.argv[1], int(sys.argv[2]), rule_from_config(json.loads(sys.argv[3]))
    quality = np.array([0.3, 0.7, 0.5])
    selector = Selector.open(path, ["ckpt/bc_a", "ckpt/bc_b", "ckpt/diffusion"], rule, seed=42)
    while len(selector.log) < episodes:
        choice = selector.pending or selector.choose()
        noise = np.random.default_rng([choice.episode, choice.arm]).normal(0, 0.2)
        selector.feedback(choice.episode, float(np.clip(quality[choice.arm] + noise, 0, 1)))
        print(choice.episode, flush=True)
    """
)


def run_deploy_loop(path, episodes: int, rule, kill_after: int | None = None) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", DEPLOY_LOOP, str(path), str(episodes), json.dumps(rule.config())],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if kill_after is not None and int(line) >= kill_after:
            process.send_signal(signal.SIGKILL)
            break
    process.stdout.close()
    process.wait(timeout=60)
    if kill_after is None:
        assert process.returncode == 0
    else:
        assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    "rule", [EpsilonGreedy(0.3), ConservativeUCB(1, 0.6, 0.2, 0.1)], ids=lambda r: r.name
)
def test_selector_killed_mid_run_resumes_identically(tmp_path, rule):
    episodes = 120
    uninterrupted, crashed = tmp_path / "uninterrupted.json", tmp_path / "crashed.json"
    run_deploy_loop(uninterrupted, episodes, rule)
    run_deploy_loop(crashed, episodes, rule, kill_after=30)

    at_kill = Selector.load(crashed)
    assert 30 <= len(at_kill.log) < episodes  # killed mid-run, later than the episode seen
    reference = Selector.load(uninterrupted).state_dict()
    # The state at the kill is exactly the uninterrupted run's state after as many episodes.
    assert [vars(r) for r in at_kill.log] == reference["log"][: len(at_kill.log)]

    run_deploy_loop(crashed, episodes, rule)
    resumed = Selector.load(crashed).state_dict()
    assert resumed == reference  # same choices, ratings and random generator state
    assert len({record["arm"] for record in resumed["log"]}) == 3


def test_in_memory_selector_matches_a_persisted_one(tmp_path):
    persisted = Selector.create(CANDIDATES, EpsilonGreedy(0.5), seed=3, state_path=tmp_path / "s")
    in_memory = Selector.create(CANDIDATES, EpsilonGreedy(0.5), seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = persisted.choose(), in_memory.choose()
        assert a == b
        rating = float(rng.random())
        persisted.feedback(a.episode, rating)
        in_memory.feedback(b.episode, rating)
        persisted = Selector.load(tmp_path / "s")
    assert persisted.state_dict() == in_memory.state_dict()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["log"][0].update(rating=1.5), "log entry 0: rating 1.5 is not in [0, 1]"),
        (lambda s: s["log"][0].update(arm=-1), "log entry 0: arm -1 is not a candidate's index"),
        (lambda s: s["log"].pop(1), "log entry 1: episode 2, expected 1"),
        (lambda s: s["log"][2].update(intervened="yes"), "intervened 'yes' is not true or false"),
        (lambda s: s["pending"].update(candidate="x"), "pending episode: candidate 'x' is not"),
        (lambda s: s["pending"].update(episode=7), "pending episode: episode 7, expected 3"),
    ],
    ids=["rating", "arm", "gap", "intervened", "pending-candidate", "pending-episode"],
)
def test_a_state_edited_into_what_no_selector_writes_is_refused(tmp_path, edit, message):
    """A hand edit was taken as it stood: arm -1 counted for the last candidate, a rating of
    1.5 lifted its mean past 1, a deleted entry numbered two episodes alike, and an
    intervened of "yes" ended the summary in a numpy traceback."""
    path = tmp_path / "s.json"
    selector = Selector.create(CANDIDATES, UCB1(), state_path=path)
    for _ in range(3):
        selector.feedback(selector.choose().episode, 0.5)
    selector.choose()
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))
    with pytest.raises(SelectionError, match="s.json is corrupt: ") as raised:
        Selector.load(path)
    assert message in str(raised.value), raised.value
