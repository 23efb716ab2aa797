"""OPT-AIL's settings and its deployable part: the SAC-style actor as a robot_il ``Policy``
(``SoftActorPolicy``, which DAC's and IQ-Learn's checkpoints share).

The actor maps the (flat, concatenated) observation to a tanh-squashed Gaussian over
actions in [-1, 1]^A; deployed, it acts with its mean, ``tanh(mu)``. The checkpoint holds
only the actor (reward net and critic are training state; with ``bc_reference`` also the
frozen clone and the critic that chooses between the two, with ``clone_radius`` the clone
its mean stays near), so ``robot-il eval``, the ROS 2 policy node and the candidate selector
load it as any other checkpoint. Its normalizer is the identity on observations (the paper
feeds raw states) unless ``normalize_observations`` asks for the demonstrations' statistics
(``online_normalizer``), and maps the env's action box to [-1, 1] for actions, so ``act``
returns env units.

``OPTAILConfig`` holds every hyperparameter of the algorithm (``robot_il.policies.opt_ail.
learner``), the paper's values by default; the fields marked *deviation* choose between
the reference code's behaviour and the corrections ``ALGORITHMS.md`` lists.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.opt_ail.relu_mlp import MatmulPrecision, relu_mlp
from robot_il.policies.spec import ACTION_KEY, Spec
from torch import Tensor, nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""The actor's log standard deviation is ``MIN + (MAX - MIN)/2 (tanh(.) + 1)``, MIN the
config's ``log_std_min`` (the paper's ``LOG_STD_MIN`` by default)."""

GP_WEIGHT_BY_TASK = {"dmc:cartpole_swingup": 1.0, "dmc:walker_walk": 1.0}
"""The paper's gradient-penalty weight per task; every other task uses ``DEFAULT_GP_WEIGHT``."""
DEFAULT_GP_WEIGHT = 10.0
REWARD_OFFSET_UNIT = 0.1
"""Metres per unit of a ``reward_offsets`` feature: in decimetres push's offsets (0-30 cm)
are about the size of the normalized features beside them."""
TASK_REWARD_SHIFT = -1.0
"""Added to a task's dense reward under ``reward_source`` "task": the UR5e tasks' rewards lie
in [0, 2] (reach [0, 1], push [0, 1.25]: 0.25 x the gripper's closeness to the cube plus the
cube's closeness to its target; pick_place [0, 2]), shifted they lie in about the learned
reward's (-1, 1), which the temperature alpha and ``td_clip`` are set for. Online episodes
end by time limit only, so a constant shift leaves the best policy unchanged."""
REAL_RATIO_BY_TASK = {"dmc:walker_walk": 0.9, "dmc:cartpole_swingup": 0.95,
                      "dmc:walker_stand": 0.85}  # fmt: skip
"""The model-based variant's share of real transitions in a critic batch, per task."""
DEFAULT_REAL_RATIO = 0.9
ACTION_EDGE = 1e-4
"""Demonstrated actions are clamped to ``[-1 + ACTION_EDGE, 1 - ACTION_EDGE]`` before atanh."""


def check_key_pair(entry: str, where: str, form: str, obs_keys: tuple[str, ...]) -> None:
    """``ValueError`` (``where`` first) unless ``entry`` names two different observation keys
    as ``form`` ("a-b"), both among ``obs_keys`` when those are known."""
    keys = entry.split("-")
    if len(keys) != 2 or not all(keys) or keys[0] == keys[1]:
        raise ValueError(f"{where}: expected two different observation keys as '{form}', e.g. "
                         "'object_pose-target_pos'")  # fmt: skip
    unknown = sorted(set(keys) - set(obs_keys))
    if obs_keys and unknown:
        raise ValueError(f"{where}: {', '.join(unknown)} not among the obs_keys "
                         f"({', '.join(obs_keys)})")  # fmt: skip


@dataclasses.dataclass
class SoftActorConfig(PolicyConfig):
    """What every online imitation learner here shares (OPT-AIL, DAC, IQ-Learn): a
    tanh-Gaussian actor and one Q-network of ``hidden_dims``, Adam learning rates, discount
    ``gamma``, Polyak rate ``tau`` of the target critic, and a temperature ``alpha`` (fixed,
    as in the papers, unless ``learn_temperature``).
    An update sees ``batch_size`` online plus as many expert transitions.

    ``normalize_observations``: every network sees each observation feature mapped by the
    demonstrations' statistics (mode ``normalization``: mean/std or min/max, each spread
    taken as at least ``observation_spread_floor`` in the feature's units), fitted once
    before the first interaction and frozen; off, they see raw states, as the paper's DMC
    runs do. UR5e tasks mix centimetre-scale features (the cube's offset from its target)
    with joint angles in radians, and a reward held near 1-Lipschitz by the gradient
    penalty can barely tell 3 cm apart in raw metres. The floor keeps features the expert
    holds nearly still (a component of the gripper's orientation quaternion, std 0.005 on
    push) from mapping an exploring policy's drift to values of 50 and more.

    ``matmul_precision`` (*deviation*, a CPU-speed option): ``"bf16"`` computes the hidden
    layers' matrix products of every network's training passes from bfloat16-rounded
    operands with float32 accumulation (``robot_il.policies.opt_ail.relu_mlp``); weights,
    gradients, Adam's state, losses, acting and evaluation stay float32. ``"fp32"`` (the
    default) is the reference's arithmetic.

    Behaviour-cloning deviations (not in the paper; off by default), for tasks where the
    online learner alone does not leave the initial policy's states within its budget (UR5e
    push from 10 demonstrations, README): the BC loss is the policy's own ``forward``,
    ``-mean log pi(a_E|s_E)`` of demonstrated actions in [-1, 1] (clamped inside by
    ``ACTION_EDGE``), on ``batch_size`` expert transitions at a time; with ``bc_loss``
    ``"mse"``, ``mean ||tanh(mu(s_E)) - a_E||^2`` instead (``demonstration_loss``).

    - ``bc_pretrain_steps``: that many AdamW steps (lr ``bc_pretrain_lr``, weight decay
      ``bc_pretrain_weight_decay``; tuned BC's best setting on push) on the actor alone
      before the first env step, so the first online data come from near the expert's
      states; critic and reward start untrained.
    - ``bc_weight``: adds ``w_k * bc_loss`` on the update's expert states to the actor's loss,
      ``w_k = bc_weight * max(0, 1 - k / bc_decay_updates)`` at the k-th actor update
      (``bc_decay_updates`` 0: constant), so the actor stays near the demonstrations while the
      critic is still poor and ends as the paper's soft-greedy actor.
    - ``twin_critics``: two Q-networks, the TD target and the actor taking their minimum
      (clipped double Q; the paper has one Q-network, no twin, no min), against a critic that
      overestimates the actor's own actions (push: Q of the policy's pairs far above their
      discounted learned reward, README). OPT-AIL and DAC; IQ-Learn refuses it.
    - ``log_std_min``: the least log standard deviation (pre-tanh) of the actor, the paper's
      ``LOG_STD_MIN`` (-5) by default. Cloned from clean demonstrations, the actor's spread
      falls to that floor (0.007 in [-1, 1] units, against push's expert actions of about
      0.1): training rollouts then repeat one action per state, and neither the reward nor
      the critic sees how other actions near the expert's score. A higher floor (e.g. -3,
      0.05) keeps that much exploration; deployment acts with the mean either way.
    - ``bc_loss``: ``"nll"`` clones the actor's whole distribution; ``"mse"`` its mean action
      alone (TD3+BC's term), in pretraining and in the BC term. Demonstrated actions are
      nearly deterministic, so the NLL drives the actor's spread to the ``log_std_min``
      floor and keeps it there (training rollouts repeat one action per state), and its
      gradient on the mean grows as 1/std^2, so it overrules the critic's; the MSE leaves
      the spread to the entropy term and the critic (from wherever the cloning left the
      untrained head) and pulls on the mean with a gradient of the critic's size.
    - ``action_bounds``: ``"env"`` (the paper) maps [-1, 1] to the env's action box;
      ``"demos"`` to ``±action_bounds_margin`` times the demonstrations' largest |a| in each
      dimension, within the env's box (a dimension the demonstrations never move keeps the
      env's). Push's box allows 5 cm and 0.25 rad a step while its expert turns the gripper
      by at most 0.04 rad about two axes: an exploring actor spread over the env's box tilts
      the gripper off the table at random, one over the demonstrations' does not. The
      checkpoint acts within the same bounds on the robot. Meant for actions centred on 0
      (end-effector or joint deltas, DMC's); the demonstrations' actions are those of the
      expert transitions (``demo_subsample``).
    - ``bc_reference``: IBRL's actor proposal (Hu, Mirchandani, Sadigh, RSS 2023). The
      clone (``bc_pretrain_steps``, required) is kept frozen beside the actor; in every
      training step, TD target and deployed action, the clone's mean action competes with
      the actor's and the critic's (the learner's, trained as always) higher Q wins, per
      state: ``a = argmax_{a in {a_RL, tanh(mu_ref(s))}} Q(s, a)`` and ``V(s') =
      max(Q_targ(s', a') - alpha log pi(a'|s'), Q_targ(s', tanh(mu_ref(s'))))``. The data
      and the value then stay at least the clone's wherever the critic ranks the actions
      right, which the actor alone does not (push: every online phase, even on the task's
      own reward, fell below its clone, README). The checkpoint holds the clone and the
      critic beside the actor, so deployment chooses the same way. OPT-AIL and DAC.
    - ``clone_radius``: r > 0 keeps the actor's mean within r (pre-squash units) of the
      frozen clone's (``bc_pretrain_steps``, required): ``mu(s) = mu_ref(s) + r tanh((m(s)
      - mu_ref(s)) / r)``, m the actor network's own mean, so the online phase learns a
      bounded residual on the clone's action (Policy Decorator's bounded residual, Yuan et
      al., ICLR 2025) and cannot unlearn the push, as every unbounded online phase here
      did (README). The actor starts as the clone (m = mu_ref, the gradient there the
      identity); near 0 tanh is about linear, so r is about the largest change of the
      deployed action in [-1, 1] units. The spread stays the actor's own; the checkpoint
      holds the clone beside the actor, so deployment acts the same way.
    - ``critic_layer_norm``: a LayerNorm after each hidden layer of every Q-network (RLPD's
      critic, Ball et al., ICML 2023), which bounds how far Q extrapolates to actions the
      data do not hold: the actor here climbs the critic's error on its own actions (push,
      README), as far as ``clone_radius`` lets it. These critics run as ordinary autograd
      layers in float32 whatever ``matmul_precision`` says.
    - ``hindsight_goal``: ``"a-b"``, two observation keys whose first three entries are
      positions (m) in one frame, the position a the actions move (push: the cube,
      ``object_pose``) and the goal b it should reach (``target_pos``). At the end of each
      training episode in which a moved at least ``hindsight_min_move`` m, the episode's
      (state, action) pairs with every state's b set to where a ended join the BC term's
      data (``bc_weight``, required), drawn uniformly with the expert's transitions (HER's
      relabelling, Andrychowicz et al., NeurIPS 2017, as GCSL's supervised data, Ghosh et
      al., ICLR 2021). Why: on push every online phase fell below its clone while the
      clone's own noisy episodes, relabelled to where they took the cube, raised tuned BC
      from 2% to 8-16% in an offline check (README); no reward or success test is read,
      only which observation is the goal. The relabelled data are training state (saved
      for resume), not part of the checkpoint.
    - ``hindsight_as_expert`` (with ``hindsight_goal``): the relabelled transitions join
      every expert batch instead of the BC term's alone: the reward's positives, the
      critic's expert rows and the BC term, drawn uniformly with the expert's transitions
      (HER's relabelling for the whole learner, where the reward is learned: the
      discriminator gets, beside 10 demonstrations, every push that took the cube
      somewhere, labelled with that somewhere as its goal). Why: inside OPT-AIL the BC-only
      relabelling ended where the clone started (README), and the reward, learned from 10
      demonstrations, scores actions hardly at all.
    - ``learn_temperature``: alpha (starting at ``alpha``) is learned as SAC's (Haarnoja et
      al., "Soft Actor-Critic Algorithms and Applications", 2018): after each actor step,
      one Adam step (lr ``temperature_lr``) on ``temperature_loss = -log(alpha) * mean(log
      pi(a|s) + H_target)``, a ~ pi(s) as in that step, ``H_target =
      target_entropy_per_dim * action_dim`` (SAC's -1 per dimension by default); every use
      of alpha (actor, soft values, the optimism term) reads the current one. Why: cloned
      with the NLL term, the actor's spread falls near ``log_std_min`` (push: a BC loss of
      -23.6 over 7 dimensions, a spread of about 0.01 in [-1, 1] units against expert
      actions of about 0.1), so training episodes repeat the clone's moves and the
      relabelled pushes (``hindsight_goal``) are few and alike; a fixed alpha of 0.01
      cannot hold the spread up against the BC term's pull, a learned one rises until it
      does."""

    hidden_dims: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.01
    critic_lr: float = 3e-4
    actor_lr: float = 3e-5
    normalize_observations: bool = False
    observation_spread_floor: float = 0.05
    matmul_precision: MatmulPrecision = "fp32"
    bc_pretrain_steps: int = 0
    bc_pretrain_lr: float = 1e-3
    bc_pretrain_weight_decay: float = 0.01
    bc_weight: float = 0.0
    bc_decay_updates: int = 0
    log_std_min: float = LOG_STD_MIN
    bc_loss: Literal["nll", "mse"] = "nll"
    twin_critics: bool = False
    action_bounds: Literal["env", "demos"] = "env"
    action_bounds_margin: float = 1.5
    bc_reference: bool = False
    clone_radius: float = 0.0
    critic_layer_norm: bool = False
    hindsight_goal: str = ""
    hindsight_min_move: float = 0.05
    hindsight_as_expert: bool = False
    learn_temperature: bool = False
    target_entropy_per_dim: float = -1.0
    temperature_lr: float = 3e-4

    def validate(self) -> None:
        # before the chunk checks, whose "horizon 1 < n_obs_steps - 1 + ..." hid this cause
        if self.n_obs_steps != 1 or self.horizon != 1 or self.n_action_steps != 1:
            raise ValueError("an online learner acts on the current observation: horizon, "
                             "n_obs_steps and n_action_steps 1")  # fmt: skip
        super().validate()
        # NaN passes every ``x < bound`` test below and would train NaN weights
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        nan = [
            name for name, value in values.items() if isinstance(value, float) and math.isnan(value)
        ]
        if nan:
            raise ValueError(f"{', '.join(nan)}: nan is not a number a run can take")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.alpha <= 0 or not 0 < self.tau <= 1 or not 0 <= self.gamma < 1:
            raise ValueError("need alpha > 0, 0 < tau <= 1 and 0 <= gamma < 1")
        if self.learn_temperature and self.temperature_lr <= 0:
            raise ValueError(f"learn_temperature: temperature_lr must be > 0, got "
                             f"{self.temperature_lr:g}")  # fmt: skip
        if min(self.critic_lr, self.actor_lr, self.bc_pretrain_lr) <= 0:
            raise ValueError(f"learning rates must be > 0, got critic_lr {self.critic_lr:g}, "
                             f"actor_lr {self.actor_lr:g}, bc_pretrain_lr "
                             f"{self.bc_pretrain_lr:g}")  # fmt: skip
        if self.observation_spread_floor < 0:
            raise ValueError("observation_spread_floor must be >= 0")
        if self.bc_loss not in ("nll", "mse"):
            raise ValueError(f"bc_loss must be 'nll' or 'mse', got {self.bc_loss!r}")
        if self.action_bounds not in ("env", "demos") or self.action_bounds_margin <= 0:
            raise ValueError(
                f"need action_bounds 'env' or 'demos' and action_bounds_margin > 0, got "
                f"{self.action_bounds!r}, {self.action_bounds_margin}"
            )
        if not self.log_std_min < LOG_STD_MAX:
            raise ValueError(f"log_std_min must be below {LOG_STD_MAX}")
        if min(self.bc_pretrain_steps, self.bc_decay_updates) < 0 or self.bc_weight < 0:
            raise ValueError("need bc_pretrain_steps >= 0, bc_weight >= 0, bc_decay_updates >= 0")
        if self.bc_reference and self.bc_pretrain_steps == 0:
            raise ValueError("bc_reference keeps the clone: it needs bc_pretrain_steps > 0")
        if self.clone_radius < 0 or (self.clone_radius > 0 and self.bc_pretrain_steps == 0):
            raise ValueError(f"clone_radius must be >= 0 and, > 0, keeps the actor near the "
                             f"clone: it needs bc_pretrain_steps > 0 (got clone_radius "
                             f"{self.clone_radius:g}, bc_pretrain_steps "
                             f"{self.bc_pretrain_steps})")  # fmt: skip
        if self.matmul_precision not in ("fp32", "bf16"):
            raise ValueError(f"matmul_precision must be 'fp32' or 'bf16', got "
                             f"{self.matmul_precision!r}")  # fmt: skip
        if self.hindsight_goal:
            self.validate_hindsight()
        elif self.hindsight_as_expert:
            raise ValueError(
                "hindsight_as_expert: it relabels to the hindsight_goal, which is "
                "not set (e.g. --policy.hindsight-goal object_pose-target_pos)"
            )

    def validate_hindsight(self) -> None:
        """``hindsight_goal`` names two observation keys as "a-b" and feeds the BC term."""
        where = f"hindsight_goal {self.hindsight_goal!r}"
        check_key_pair(self.hindsight_goal, where, "achieved-goal", self.obs_keys)
        if self.bc_weight <= 0 or self.hindsight_min_move < 0:
            raise ValueError(f"{where}: the relabelled episodes feed the BC term: it needs "
                             f"bc_weight > 0 and hindsight_min_move >= 0 (got bc_weight "
                             f"{self.bc_weight:g}, hindsight_min_move "
                             f"{self.hindsight_min_move:g})")  # fmt: skip


TANH_TD_BOUND = 100.0
"""The papers' TD clip: the value bound ``1 / (1 - gamma)`` at gamma 0.99 of a reward in
(-1, 1)."""


def td_bound(td_clip: float | None, reward_output: str) -> float:
    """The bound TD targets are clipped to: ``td_clip`` if set, else the value bound of the
    reward: ``TANH_TD_BOUND`` for a tanh reward (DAC's logit too, as its runs here have
    had) and none (``inf``) for the linear one, whose values are unbounded: a clip of 100
    would flatten walker_walk's values, 500-1500 under the linear reward."""
    if td_clip is not None:
        return td_clip
    return TANH_TD_BOUND if reward_output == "tanh" else math.inf


@dataclasses.dataclass
class RewardNetConfig(SoftActorConfig):
    """Learners with a reward network ``tanh(MLP(LayerNorm([s, a])))`` and its gradient
    penalty (OPT-AIL, DAC): Adam ``reward_lr``; ``gp_weight`` 0 or less means the paper's
    per-task value (``GP_WEIGHT_BY_TASK``); TD targets are clipped to ``[-td_bound,
    td_bound]`` (``td_bound``: ``td_clip`` if set, else the reward's value bound).

    Deviations (not in the papers; off by default), all but the last for push from 10
    demonstrations, where the (s, a) reward tells the expert's states from the policy's but
    not its actions (README: it scores the policy's action on expert states as the expert's
    own):

    - ``reward_input``: ``"state_action"`` (the papers) feeds the reward net ``[s, a]``;
      ``"state_next_state"`` feeds it the transition ``[s, s']`` (state-only, as GAIfO's
      discriminator), in the reward step, its gradient penalty and every TD target (the
      model-based variant scores a model transition's predicted s'). With end-effector delta
      actions s' shows where the action moved the gripper, in the observation's normalized
      units, so the reward can score what an action did rather than the action's numbers.
    - ``reward_obs_keys``: the observation keys the reward net sees of s (and of s'); empty:
      all the actor sees. Joint velocities and angles show how jerky the recent motion was,
      which tells the policy's states from the expert's without looking at the action;
      restricted to, e.g., the gripper's, the cube's and the target's poses the reward must
      tell them apart by where the action takes them.
    - ``reward_offsets``: entries ``"a-b"`` naming two observation keys whose first three
      entries are positions (m) in one frame, e.g. ``"object_pose-target_pos"``; the reward
      net also sees, of s (and of s'), position a minus position b in decimetres
      (``REWARD_OFFSET_UNIT``), computed from the raw positions. Ten demonstrations cover few
      absolute cube and gripper positions but many more offsets between them: a reward that
      can score the cube's offset from its target, and the gripper's from the cube, the same
      wherever on the table they are, can generalise from the demonstrations to the policy's
      episodes.
    - ``reward_source``: ``"learned"`` (the papers) or ``"task"``, a diagnostic, not
      imitation: the critic learns from the task's own dense reward of each transition's
      next state (``Task.evaluate``, plus ``TASK_REWARD_SHIFT``), online and expert alike,
      and the reward net takes no step. With every other setting unchanged it tells whether
      the online phase (critic, actor and their settings) can improve the clone within the
      budget at all when the reward is not at fault. UR5e tasks only.
    - ``critic_warmup_updates``: at the loop's first update, first that many updates with
      the actor frozen (reward, critic and Polyak steps only, each on ``batch_size`` online
      and as many expert transitions, with no env step between them), so that a cloned actor
      (``bc_pretrain_steps``) does not climb an untrained critic; they count no actor step
      (``bc_decay_updates``). Model-free only (the model-based loop refuses it).
    - ``critic_updates_per_step``: after each env step, that many updates, the actor
      stepping in the last one only (reward, critic and Polyak steps in each, every one on
      fresh batches): the update-to-data ratio of RLPD (Ball, Smith, Kostrikov, Levine, ICML
      2023), which trains the critic many times per env step against offline data while
      the actor moves once. 1 (the papers): one update per env step. Model-free only (the
      model-based loop has its own ``updates_per_step``).
    - ``reward_output`` (for walker_walk): ``"tanh"`` (the paper) bounds OPT-AIL's reward
      to (-1, 1); ``"linear"`` drops the tanh, so ``reward_loss`` with its gradient penalty
      is WGAN-GP's critic loss and r a Lipschitz potential that falls with the distance
      from the expert's pairs (WAIL, Xiao et al. 2019). A bounded reward under this loss,
      whose gradient never fades, is pushed to its floor on every pair far from the
      expert's; walker_walk's states on the way up from the start then score as lying does
      (benchmarks/README.md, "Why OPT-AIL falls late"); not on walker_stand, where it stays
      small, scores getting up no higher than lying and ends below the tanh (275 against
      577 at 100k). OPT-AIL only (DAC's reward is its logit already). Its values have no
      bound, so neither have its TD targets unless ``td_clip`` sets one (``td_bound``)."""

    reward_lr: float = 3e-5
    gp_weight: float = 0.0
    td_clip: float | None = None
    reward_input: Literal["state_action", "state_next_state"] = "state_action"
    reward_obs_keys: tuple[str, ...] = ()
    reward_offsets: tuple[str, ...] = ()
    reward_source: Literal["learned", "task"] = "learned"
    critic_warmup_updates: int = 0
    critic_updates_per_step: int = 1
    reward_output: Literal["tanh", "linear"] = "tanh"

    def validate(self) -> None:
        super().validate()
        if self.critic_updates_per_step < 1:
            raise ValueError("critic_updates_per_step must be >= 1")
        if self.reward_lr <= 0:
            raise ValueError(f"reward_lr must be > 0, got {self.reward_lr:g}")
        if self.reward_input not in ("state_action", "state_next_state"):
            raise ValueError(f"reward_input must be 'state_action' or 'state_next_state', got "
                             f"{self.reward_input!r}")  # fmt: skip
        if self.reward_source not in ("learned", "task"):
            raise ValueError(f"reward_source must be 'learned' or 'task', got "
                             f"{self.reward_source!r}")  # fmt: skip
        if self.reward_output not in ("tanh", "linear"):
            raise ValueError(f"reward_output must be 'tanh' or 'linear', got "
                             f"{self.reward_output!r}")  # fmt: skip
        if self.critic_warmup_updates < 0:
            raise ValueError("critic_warmup_updates must be >= 0")
        if self.td_clip is not None and not self.td_clip > 0:
            raise ValueError(f"td_clip must be > 0 (or unset: the reward's bound), got "
                             f"{self.td_clip:g}")  # fmt: skip
        unknown = sorted(set(self.reward_obs_keys) - set(self.obs_keys))
        if self.obs_keys and unknown:
            raise ValueError(f"reward_obs_keys {', '.join(unknown)}: not among the obs_keys "
                             f"({', '.join(self.obs_keys)})")  # fmt: skip
        for entry in self.reward_offsets:
            check_key_pair(entry, f"reward_offsets {entry!r}", "a-b", self.obs_keys)


@dataclasses.dataclass
class OPTAILConfig(RewardNetConfig):
    """OPT-AIL hyperparameters (the paper's 2024 run script unless said otherwise).

    ``eta`` is the optimism weight η (0 turns the term off).

    Deviations from the reference code (``ALGORITHMS.md``):

    - ``optimism_update``: ``"folded"`` adds η·optimism to the critic's TD loss in one Adam
      step and skips the term entirely at η = 0; ``"separate_step"`` is the reference's
      second Adam step on the optimism loss alone, taken even at η = 0 (Adam's momentum
      then still moves the critic).
    - ``detach_policy_actions``: sample the optimism term's policy actions without a
      gradient path into the actor (the reference lets it through).
    - ``optimism_states``: 0 uses every state of the batch (the paper); N > 0 uses N of
      them, half online, half expert: the CPU profile (the term is most of an update's cost).
    - ``reward_drift_weight``: ``reward_loss + lambda_gp gp + eps_drift drift`` with
      ``drift = E_E[r^2]``, ProGAN's drift penalty (Karras, Aila, Laine, Lehtinen, ICLR 2018,
      eps_drift 0.001 there), which keeps a critic's output near 0 on the expert's pairs.
      OPT-AIL's loss does not see a constant added to r, so an unbounded reward
      (``reward_output`` "linear") drifts upward over a run, and Q with it (walker_walk:
      upright states 4.2 in a fresh net, 8-10 after 100k env steps, Q 1000-1500). 0 (the
      paper): none.

    Model-based variant (``model_based``, arXiv 2605.01778; ``robot_il.policies.opt_ail.
    model_based``): an ensemble of ``ensemble_size`` dynamics MLPs (``model_hidden_dims``,
    Swish, LayerNorm) of which ``elites`` are used, refitted every ``model_every`` env steps
    for at most ``model_max_steps`` warm-started Adam steps (lr ``model_lr``, batch
    ``model_batch_size``) with early stopping on a hold-out of ``model_holdout`` of the real
    transitions (at most ``MAX_HOLDOUT``); every ``rollout_every`` env steps, 1-step rollouts
    from ``rollout_states`` real states go to a model buffer of ``model_buffer_rollouts``
    such rollouts; each update's critic batch is ``real_ratio`` real (0: the paper's
    per-task value, ``REAL_RATIO_BY_TASK``) and the rest model transitions;
    ``updates_per_step`` updates per env step; no optimism term (the reference takes none).
    """

    eta: float = 1e-3
    optimism_actions: int = 10
    optimism_update: Literal["folded", "separate_step"] = "folded"
    detach_policy_actions: bool = True
    optimism_states: int = 0
    reward_drift_weight: float = 0.0
    model_based: bool = False
    ensemble_size: int = 7
    elites: int = 5
    model_hidden_dims: tuple[int, ...] = (256,) * 6
    model_lr: float = 1e-3
    model_batch_size: int = 256
    model_holdout: float = 0.1
    model_every: int = 1000
    model_max_steps: int = 300
    rollout_every: int = 250
    rollout_states: int = 10_000
    model_buffer_rollouts: int = 4
    real_ratio: float = 0.0
    updates_per_step: int = 3

    def validate(self) -> None:
        super().validate()
        if self.optimism_actions < 1 or self.optimism_states < 0 or self.eta < 0:
            raise ValueError("need optimism_actions >= 1, optimism_states >= 0 and eta >= 0")
        if not self.reward_drift_weight >= 0:
            raise ValueError(f"reward_drift_weight must be >= 0, got {self.reward_drift_weight:g}")
        if not 1 <= self.elites <= self.ensemble_size:
            raise ValueError(f"need 1 <= elites <= ensemble_size, got {self.elites} of "
                             f"{self.ensemble_size}")  # fmt: skip
        counts = (self.model_every, self.model_max_steps, self.rollout_every,
                  self.rollout_states, self.model_buffer_rollouts, self.updates_per_step,
                  self.model_batch_size)  # fmt: skip
        if min(counts) < 1:
            raise ValueError(
                "model_every, model_max_steps, rollout_every, rollout_states, "
                "model_buffer_rollouts, updates_per_step, model_batch_size >= 1"
            )
        if not 0 < self.model_holdout < 1 or not 0 <= self.real_ratio <= 1:
            raise ValueError("need 0 < model_holdout < 1 and 0 <= real_ratio <= 1")
        if self.model_based and (self.critic_warmup_updates or self.critic_updates_per_step > 1):
            raise ValueError("critic_warmup_updates and critic_updates_per_step apply to "
                             "model-free OPT-AIL only (model-based: updates_per_step)")  # fmt: skip

    def ignored_settings(self) -> list[str]:
        """The settings away from their defaults that this variant never reads: the other
        variant's (``OPTIMISM_SETTINGS`` for the model-based one, ``MODEL_SETTINGS`` for the
        model-free one), which a run should refuse rather than train as if unset. Loading a
        checkpoint does not ask."""
        other = OPTIMISM_SETTINGS if self.model_based else MODEL_SETTINGS
        defaults = type(self)()
        return [name for name in other if getattr(self, name) != getattr(defaults, name)]


OPTIMISM_SETTINGS = ("eta", "optimism_actions", "optimism_update", "detach_policy_actions",
                     "optimism_states")  # fmt: skip
"""Model-free OPT-AIL's optimism term; the model-based variant takes none."""
MODEL_SETTINGS = ("ensemble_size", "elites", "model_hidden_dims", "model_lr", "model_batch_size",
                  "model_holdout", "model_every", "model_max_steps", "rollout_every",
                  "rollout_states", "model_buffer_rollouts", "real_ratio",
                  "updates_per_step")  # fmt: skip
"""The model-based variant's dynamics ensemble, rollouts and update schedule."""


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    """ReLU MLP ``inputs -> hidden... -> outputs``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


def layer_norm_mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    """``mlp`` with a LayerNorm between each hidden Linear and its ReLU."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.LayerNorm(width), nn.ReLU()]
        inputs = width
    layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class QNet(nn.Module):
    """``Q(s, a)``: one MLP on ``[s, a]`` (no twin), run as one autograd node (``relu_mlp``);
    with ``layer_norm``, ``layer_norm_mlp`` run as ordinary layers."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], layer_norm: bool = False) -> None:
        super().__init__()
        self.layer_norm = layer_norm
        self.mlp = (layer_norm_mlp if layer_norm else mlp)(inputs, hidden, 1)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        pairs = torch.cat([obs, action], dim=-1)
        return (self.mlp(pairs) if self.layer_norm else relu_mlp(self.mlp, pairs)).squeeze(-1)

    def heads(self, obs: Tensor, action: Tensor) -> list[Tensor]:
        """Every estimate the TD loss trains: this one."""
        return [self(obs, action)]


class TwinQNet(nn.Module):
    """Two ``QNet``s; ``Q(s, a)`` is their minimum (clipped double Q, Fujimoto et al. 2018), the
    ``twin_critics`` deviation: what the TD target bootstraps from and the actor climbs."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], layer_norm: bool = False) -> None:
        super().__init__()
        self.q1 = QNet(inputs, hidden, layer_norm)
        self.q2 = QNet(inputs, hidden, layer_norm)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return torch.minimum(self.q1(obs, action), self.q2(obs, action))

    def heads(self, obs: Tensor, action: Tensor) -> list[Tensor]:
        """Both estimates, each trained on the same TD target."""
        return [self.q1(obs, action), self.q2(obs, action)]


def critic_network(config: SoftActorConfig, obs_dim: int, action_dim: int) -> QNet | TwinQNet:
    """The Q-network ``config`` asks for: twin or one (``twin_critics``), with or without
    LayerNorm (``critic_layer_norm``)."""
    network = TwinQNet if config.twin_critics else QNet
    return network(obs_dim + action_dim, config.hidden_dims, config.critic_layer_norm)


def squashed_gaussian_log_prob(u: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """``log pi(tanh(u))`` for pre-squash samples ``u`` of ``N(mu, exp(log_std)^2)``, (B,)."""
    gaussian = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    # log |d tanh(u)/du| = log(1 - tanh(u)^2), in a form that is stable for large |u|
    squash = 2 * (np.log(2) - u - nn.functional.softplus(-2 * u))
    return (gaussian - squash).sum(-1)


def _presquash_sample(mu: Tensor, log_std: Tensor) -> Tensor:
    """``u ~ N(mu, exp(log_std)^2)``, reparameterized (one ``randn_like(mu)`` draw)."""
    return mu + log_std.exp() * torch.randn_like(mu)


def demonstration_loss(kind: str, mu: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """The BC loss ``bc_loss`` names (``SoftActorConfig``) of demonstrated actions in
    [-1, 1] under the actor's distribution ``(mu, log_std)`` on their states:
    ``demonstration_nll``, or ``mean ||tanh(mu) - a||^2`` (summed over the action's
    dimensions, as the NLL is), which ignores ``log_std``."""
    if kind == "mse":
        return (torch.tanh(mu) - action).square().sum(-1).mean()
    return demonstration_nll(mu, log_std, action)


def demonstration_nll(mu: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """Behaviour cloning's loss ``-mean log pi(a|s)`` of demonstrated actions in [-1, 1]
    (clamped inside by ``ACTION_EDGE``, where tanh is invertible) under the actor's
    distribution ``(mu, log_std)`` on their states."""
    target = action.clamp(-1 + ACTION_EDGE, 1 - ACTION_EDGE)
    return -squashed_gaussian_log_prob(torch.atanh(target), mu, log_std).mean()


class SoftActorPolicy(Policy):
    """The actor of every online imitation learner here; see the module docstring. Each
    learner's subclass names its ``policy_type`` and config class."""

    def __init__(self, config: SoftActorConfig, spec: Spec, normalizer: Any) -> None:
        super().__init__(config, spec, normalizer)
        obs_dim = self.encoder.output_dim
        self.actor = mlp(obs_dim, config.hidden_dims, 2 * self.action_dim)
        self.reference: nn.Sequential | None = None
        """With ``bc_reference`` or ``clone_radius``: the frozen clone, the actor's shape
        (else None)."""
        self.critic: QNet | TwinQNet | None = None
        """With ``bc_reference``: the learner's critic, which chooses between the actor's and
        the clone's action (else None; the learner keeps its own)."""
        if config.bc_reference or config.clone_radius > 0:
            self.reference = mlp(obs_dim, config.hidden_dims, 2 * self.action_dim)
            self.reference.requires_grad_(False)
        if config.bc_reference:
            self.critic = critic_network(config, obs_dim, self.action_dim)

    def distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log standard deviation (pre-squash) for flat observations ``(B, D)``;
        with ``clone_radius`` the mean held within it of the clone's."""
        mu, log_std = self.network_distribution(obs)
        radius = self.config.clone_radius
        if radius > 0:
            mu_ref = self.reference_mean(obs)
            mu = mu_ref + radius * torch.tanh((mu - mu_ref) / radius)
        return mu, log_std

    def network_distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``distribution`` of the actor network alone (run as one autograd node,
        ``relu_mlp``), before ``clone_radius`` holds its mean: what BC pretraining clones."""
        mu, raw = relu_mlp(self.actor, obs).chunk(2, dim=-1)
        low = self.config.log_std_min
        log_std = low + 0.5 * (LOG_STD_MAX - low) * (torch.tanh(raw) + 1)
        return mu, log_std

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterized actions in [-1, 1] and their log-density ``log pi(a|s)``, (B,)."""
        return self.sample_from(*self.distribution(obs))

    def sample_action(self, obs: Tensor) -> Tensor:
        """``sample``'s actions alone (the same draw), without computing their log-density
        (exploring, model rollouts: a dozen small ops per env step fewer)."""
        mu, log_std = self.distribution(obs)
        return torch.tanh(_presquash_sample(mu, log_std))

    @staticmethod
    def sample_from(mu: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor]:
        """``sample`` for a distribution already computed (e.g. one actor pass per state,
        repeated for several samples of it)."""
        u = _presquash_sample(mu, log_std)
        return torch.tanh(u), squashed_gaussian_log_prob(u, mu, log_std)

    def log_prob(self, obs: Tensor, action: Tensor) -> Tensor:
        """``log pi(a|s)`` of given actions in (-1, 1) for flat observations, (B,)."""
        mu, log_std = self.distribution(obs)
        u = torch.atanh(action)
        return squashed_gaussian_log_prob(u, mu, log_std)

    def mean_action(self, obs: Tensor) -> Tensor:
        """The deterministic action ``tanh(mu(s))`` in [-1, 1]."""
        return torch.tanh(self.distribution(obs)[0])

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Behaviour-cloning loss on a normalized batch: ``-mean log pi(a|s)`` of its actions
        (clamped inside (-1, 1), where tanh is invertible). The online learners never call it;
        it lets a person's corrections fine-tune an online-trained checkpoint
        (``robot_il.train.finetune``) as they do any other."""
        return demonstration_nll(*self.distribution(self.encoder(batch)), batch[ACTION_KEY][:, 0])

    def reference_mean(self, obs: Tensor) -> Tensor:
        """The frozen clone's mean ``mu_ref(s)`` (pre-squash; ``bc_reference``,
        ``clone_radius``)."""
        return relu_mlp(self.reference, obs).chunk(2, dim=-1)[0]

    def reference_action(self, obs: Tensor) -> Tensor:
        """The clone's deterministic action ``tanh(mu_ref(s))`` in [-1, 1] (``bc_reference``)."""
        return torch.tanh(self.reference_mean(obs))

    def choose(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """IBRL's proposal (``bc_reference``): per state of ``obs`` (B, D), ``action`` (B, A)
        or the clone's ``reference_action``, whichever ``critic`` scores higher (ties: the
        actor's); and which was taken (B,) bool, True for the clone's. Without
        ``bc_reference``, ``action`` itself."""
        if self.critic is None:
            return action, torch.zeros(len(action), dtype=torch.bool)
        reference = self.reference_action(obs)
        taken = self.critic(obs, reference) > self.critic(obs, action)
        return torch.where(taken[:, None], reference, action), taken

    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        state = self.encoder(obs)
        return self.choose(state, self.mean_action(state))[0][:, None]


class OPTAILPolicy(SoftActorPolicy):
    """OPT-AIL's deployable actor."""

    policy_type = "opt_ail"
    config_class = OPTAILConfig


def identity_observation_normalizer(spec: Spec, action_low: np.ndarray, action_high: np.ndarray):
    """A ``Normalizer`` that leaves observations as they are and maps the action box
    ``[action_low, action_high]`` to [-1, 1] (see the module docstring)."""
    from robot_il.dataset import Normalizer

    bounds = {
        key: np.stack([-np.ones(shape, np.float32), np.ones(shape, np.float32)])
        for key, shape in spec["observation"].items()
    }
    bounds[ACTION_KEY] = np.stack([action_low, action_high]).astype(np.float32)
    return Normalizer.fit_arrays(bounds, mode="minmax")


def online_normalizer(
    spec: Spec, action_low: np.ndarray, action_high: np.ndarray, observations: Any = None
) -> Any:
    """The online learners' ``Normalizer``: ``identity_observation_normalizer`` when
    ``observations`` is None, else with each observation key's statistics taken from
    ``observations`` (a ``Normalizer`` fitted on the demonstrations, see
    ``SoftActorConfig.normalize_observations``)."""
    from robot_il.dataset import Normalizer

    normalizer = identity_observation_normalizer(spec, action_low, action_high)
    if observations is None:
        return normalizer
    params = normalizer.state_dict()
    params.update({name: value for name, value in observations.state_dict().items()
                   if name.rpartition(".")[0] in spec["observation"]})  # fmt: skip
    return Normalizer.from_state_dict(params)
