"""Online model selection from human feedback (Li et al. 2023): each trained candidate policy
is a bandit arm, each deployed episode's rating by the supervising person is its reward.

- :mod:`robot_il.select.rules`: UCB1, conservative UCB, epsilon-greedy, uniform.
- :mod:`robot_il.select.selector`: :class:`Selector`, episodes, feedback checks, durable state.
- :mod:`robot_il.select.person`: a simulated person for tests and benchmarks.
- :mod:`robot_il.select.topics`: the ROS topic names the selector and front-ends share.
- :mod:`robot_il.select.handlers`, :mod:`robot_il.select.web`, :mod:`robot_il.select.tui`:
  the person's front-ends (a local web page, a terminal UI), free of ROS; the nodes are
  ``robot_il.ros.selector_node``, ``robot_il.ros.feedback_web`` and
  ``robot_il.ros.simulated_person_node``.
"""

from robot_il.select.person import CandidateProfile, Feedback, SimulatedPerson, simulate_feedback
from robot_il.select.rules import (
    RULES,
    UCB1,
    ConservativeUCB,
    EpsilonGreedy,
    SelectionRule,
    Uniform,
    rule_from_config,
)
from robot_il.select.selector import Choice, EpisodeRecord, Selector, check_budget

__all__ = [
    "RULES",
    "UCB1",
    "CandidateProfile",
    "Choice",
    "ConservativeUCB",
    "EpisodeRecord",
    "EpsilonGreedy",
    "Feedback",
    "SelectionRule",
    "Selector",
    "SimulatedPerson",
    "Uniform",
    "check_budget",
    "rule_from_config",
    "simulate_feedback",
]
