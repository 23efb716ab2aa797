"""The online training loop: every algorithm that learns by interacting with an env.

Read top to bottom, one env step at a time (as stable-baselines3's ``learn`` and CleanRL's
scripts do): act with the algorithm's exploration policy, step the env, store the transition
(gymnasium's ``terminated`` kept, ``truncated`` only ending the episode), and, once
``learning_starts`` transitions are in, let the algorithm learn (``learn``: one update on an
online and an expert batch for OPT-AIL, DAC and IQ-Learn; model fits, model rollouts and
several updates for model-based OPT-AIL); each ended training episode is handed to it too
(``end_episode``: with ``hindsight_goal``, relabelled for the BC term).
Every ``eval.every`` env steps the deployable policy (the checkpoint's own ``act``) runs
``eval.episodes`` seeded episodes in a second env: return and success with a 95% interval.
With the policy's ``bc_pretrain_steps`` (a deviation from the papers, ``SoftActorConfig``),
a fresh run first trains the actor by behaviour cloning on the expert transitions and
evaluates it as env step 0, before any interaction.

Episodes of a UR5e task (``robot_il.envs.RobotEnv``): training episodes last as long as the
demonstrations' (the dataset's ``env_spec.max_episode_steps``, when recorded on the same
task) and are not ended at success, only truncated: the scripted demonstrations hold the
goal past success, and an episode ended there would make success an absorbing state whose
value hangs on the sign of a learned reward.
Evaluation episodes are the task's own (ended at success or the task's time limit, or
``eval.max_episode_steps``), the same episodes ``robot-il eval`` and BC's evaluation run.
DeepMind Control tasks fix their own episodes.

Order of work, so that bad input fails before any interaction: open the dataset, build the
env, check the dataset's observation and action sizes fit it, load the expert transitions
(NaN refused), build the learner (its settings checked), and only then lock ``out``, one
training at a time (``trainer.lock_run``), and check a save to resume there. Actions are
learned in [-1, 1]^A; a wrapper maps them to the env's box, and the policy's normalizer
maps them back for deployment.
Observations are raw (the paper's), or, with the policy's ``normalize_observations``, mapped
by the imitated demonstrations' statistics, fitted once and frozen: both buffers hold them
mapped as the deployed policy's ``act`` maps its input, and a resumed run checks that its
saved normalizer is the one it would fit.

Updates run with denormal floats flushed to zero (``denormals_flushed``): after some
thousands of updates Adam's second moments and some gradients fall below float32's normal
range (1.2e-38), and each operation on such a number costs the CPU many times a normal
one (walker_walk at 25k env steps: 61 ms CPU per update with them, 48 ms flushed). Values
that small change no weight beyond float rounding; acting and evaluation keep the CPU's
default, as deployment does.

Saves happen at episode ends: ``save_every`` env steps apart, at the start of an episode
that may outlast the budget (its start plus the env's ``max_episode_steps`` beyond
``env_steps``) and at the end of the budget: weights, optimizers, replay buffer, counters and
every RNG. Training episode ``i`` resets the env with seed ``seed * 1_000_000 + i``, so a
killed run resumed from its last save repeats exactly what the uninterrupted run did. When
the budget ends mid-episode, the deployable actor is saved at ``env_steps`` and
``train_state/finished.json`` records the end (counters, evaluations), while the state to
continue from stays that episode's start: a rerun with the same budget has nothing left to
do, and one with a larger budget (the replay buffer grows with it) plays the cut episode
again from its start and ends exactly as a run given the larger budget from the start
(``metrics.csv`` too: rows logged past the state a run continues from are dropped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robot_il.errors import CheckpointError, ConfigError, DatasetError
from robot_il.policies import DEPLOY_SUBDIR, policy_class
from robot_il.policies.base import torch_device
from robot_il.policies.checkpoint_files import NORMALIZER_FILE
from robot_il.policies.opt_ail.relu_mlp import bf16_products_supported, bf16_rounds_operands
from robot_il.policies.spec import (
    ACTION_KEY,
    is_image_key,
    spec_from_dataset,
    spec_from_env,
    spec_mismatches,
)
from robot_il.provenance import (
    code_provenance,
    dataset_record,
    refuse_changed_data,
    run_segment,
)
from robot_il.train.config import OnlineTrainConfig
from robot_il.train.evaluate import EvalResult, evaluate, has_success_test
from robot_il.train.replay import ReplayBuffer, expert_buffer, flatten_observation
from robot_il.train.trainer import (
    STATE_DIR,
    SUMMARY_JSON,
    MetricsLogger,
    RunProgress,
    field_defaults,
    lock_run,
    observation_keys,
    policy_type_of,
    recover_dir,
    refuse_changed_normalizer,
    refuse_changed_settings,
    replace_dir,
    restore_rng_states,
    rng_states,
    save_checkpoint,
    training_settings,
    warn_changed_resume,
)

ONLINE_ALGORITHMS: dict[str, str] = {
    "opt_ail": "robot_il.policies.opt_ail:opt_ail_learner",
    "dac": "robot_il.policies.dac:DAC",
    "iq_learn": "robot_il.policies.iq_learn:IQLearn",
}
"""Policy type -> what builds its learner from ``(policy, task)`` (imported when used)."""

REPLAY_FILE = "replay.npz"
FINISHED_FILE = "finished.json"
EPISODE_SEED_STRIDE = 1_000_000
RESUME_FIXED = ("task", "backend", "seed", "max_episodes", "demo_subsample", "learning_starts")
"""Run settings a resumed run must keep (``env_steps``, ``buffer_size`` when it holds the
saved transitions, evaluation, logging, saving and threads may change): the env, the episode
seeds, the expert buffer and when updates start. ``task`` and ``backend`` are kept as
resolved (the dataset's unless given), so naming the ones a run took from its dataset
changes nothing."""
OBSERVATION_MAPPING = ("normalization", "observation_spread_floor")
"""Policy settings read only with ``normalize_observations`` (the online learners' actions
are mapped from their env's bounds whatever ``normalization`` says)."""
EVAL_FIELDS = ("eval_return", "eval_return_std", "eval_success", "eval_low", "eval_high")


class NormalizedActions(gym.ActionWrapper):
    """Takes actions in [-1, 1]^A and gives the env ``low + (a + 1) / 2 (high - low)``;
    ``low`` and ``high`` default to the env's action box."""

    def __init__(
        self, env: gym.Env, low: np.ndarray | None = None, high: np.ndarray | None = None
    ) -> None:
        super().__init__(env)
        self.low = np.asarray(env.action_space.low if low is None else low, np.float32)
        self.high = np.asarray(env.action_space.high if high is None else high, np.float32)
        shape = env.action_space.shape
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape, dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        unit = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


def demonstrated_action_bounds(
    actions: np.ndarray, low: np.ndarray, high: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """``±margin * max |a|`` of the demonstrated ``actions`` (N, A) per dimension, within the
    env's box ``[low, high]`` (``SoftActorConfig.action_bounds`` "demos"); a dimension whose
    bounds would be empty (the demonstrations never move it) keeps the env's."""
    reach = margin * np.abs(actions).max(axis=0)
    bounded_low, bounded_high = np.maximum(low, -reach), np.minimum(high, reach)
    empty = bounded_high <= bounded_low
    return (np.where(empty, low, bounded_low).astype(np.float32),
            np.where(empty, high, bounded_high).astype(np.float32))  # fmt: skip


@dataclasses.dataclass
class OnlineResult:
    """What a finished run leaves: its checkpoint and every evaluation (one dict each).
    ``success_test``: whether the evaluation task has one (DeepMind Control's have none:
    their ``eval_success`` is 0, to be left unread)."""

    checkpoint: Path
    env_steps: int
    evaluations: list[dict[str, Any]]
    wall_s: float
    success_test: bool


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Treat and produce float numbers below the normal range (``|x| < 1.2e-38`` in float32)
    as zero in this thread's CPU arithmetic (FTZ/DAZ), then return to the CPU's default
    (keeping them). A no-op on CPUs without the flags. The loop's torch work runs in this
    thread (one torch thread, ``OnlineTrainConfig.threads``; CPU autograd runs in the
    caller's thread)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def make_online_env(
    spec: dict[str, Any],
    task: str,
    backend: str | None,
    where: str,
    *,
    max_episode_steps: int | None = None,
    terminate_on_success: bool = True,
) -> Any:
    """An env for ``task`` at the dataset's rate and action mode; ``DatasetError`` naming
    ``where`` (the dataset) if ``task`` cannot run at them (another robot's dataset: a DMC
    one for a UR5e task, or the reverse) or the dataset's observation or action sizes do not
    fit it. ``max_episode_steps`` (None: the task's time limit) and ``terminate_on_success``
    apply to UR5e tasks only."""
    from robot_il.envs import DMC_BACKENDS, DMC_TASKS, TASKS, make_env
    from robot_il.envs.backends import BACKENDS

    backend = backend or spec.get("backend") or "mujoco"
    try:
        env = make_env(
            task,
            backend,
            control_hz=spec["control_hz"],
            action_mode=spec.get("action_mode") or "joint",
            max_episode_steps=max_episode_steps,
            terminate_on_success=terminate_on_success,
            frame=spec.get("frame"),
        )
    except ConfigError as error:
        if task not in (*TASKS, *DMC_TASKS) or backend not in (*BACKENDS, *DMC_BACKENDS):
            raise  # the task or backend named is wrong (a typo), not the dataset
        raise DatasetError(f"{where}: does not fit env {task}: {error}") from None
    offered = spec_from_env(env)
    problems = spec_mismatches({**spec, "robot": None}, offered)
    if spec.get("robot") != offered.get("robot"):
        problems.insert(0, f"robot {offered.get('robot')!r} != dataset's {spec.get('robot')!r}")
    if problems:
        env.close()
        raise DatasetError(f"{where}: does not fit env {task}: {'; '.join(problems)}")
    return env


def train_online(
    config: OnlineTrainConfig,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> OnlineResult:
    """Train the algorithm ``config`` names; see the module docstring. ``on_evaluation``
    receives each evaluation's row as it is made (e.g. to append it to a results file).
    On a GPU (``device``) torch's factory functions make their tensors there meanwhile, so
    the learner's networks, batches and random draws live on it; numpy's stay on the CPU."""
    device = learner_device(config.device, getattr(config.policy, "matmul_precision", "fp32"))
    with tensors_made_on(device), contextlib.ExitStack() as held:
        return _train_online(config, on_evaluation, held)


def tensors_made_on(device: torch.device) -> contextlib.AbstractContextManager:
    """Meanwhile torch's factory functions make their tensors on ``device`` (a GPU); on the
    CPU nothing changes (no device mode: the CPU path's every op stays as it was)."""
    return torch.device(device) if device.type != "cpu" else contextlib.nullcontext()


def _train_online(
    config: OnlineTrainConfig,
    on_evaluation: Callable[[dict[str, Any]], None] | None,
    held: contextlib.ExitStack,
) -> OnlineResult:
    """``train_online``'s run; ``held`` keeps the run directory's lock (``lock_run``) until
    the run returns or fails."""
    from robot_il.dataset import Dataset, Normalizer
    from robot_il.policies.opt_ail.policy import (
        OPTAILConfig,
        RewardNetConfig,
        online_normalizer,
        td_bound,
    )

    code_provenance()  # the code this run loaded, whatever is committed before its saves
    policy_type = policy_type_of(config)
    config.validate()
    if config.threads > 0:
        torch.set_num_threads(config.threads)

    # -- input checks, before any interaction ------------------------------------------
    dataset = Dataset.open(config.dataset)  # read by episode: cameras it never uses stay on disk
    obs_keys = sorted(observation_keys(tuple(config.policy.obs_keys), dataset))
    spec = spec_from_dataset(dataset, obs_keys, config.dataset)
    recorded_env = {"task": spec["task"], "backend": spec.get("backend") or "mujoco"}
    task = config.task or recorded_env["task"]
    if not task:
        raise ConfigError(f"{config.dataset}: the dataset names no task; pass --task")
    backend = config.backend or recorded_env["backend"]
    spec["task"] = task
    if config.max_episodes > dataset.num_episodes:
        raise ConfigError(
            f"{config.dataset}: max_episodes {config.max_episodes} > the "
            f"{dataset.num_episodes} episodes it holds"
        )
    policy_config = dataclasses.replace(config.policy, obs_keys=tuple(obs_keys))
    if isinstance(policy_config, RewardNetConfig):  # the bound the run clips to, as saved
        bound = td_bound(policy_config.td_clip, policy_config.reward_output)
        policy_config = dataclasses.replace(policy_config, td_clip=bound)
    try:
        policy_config.validate()
    except ValueError as error:
        raise ConfigError(f"policy config: {error}") from None
    ignored = policy_config.ignored_settings() if isinstance(policy_config, OPTAILConfig) else []
    if ignored:  # a flag that would change nothing
        variant = "model-free" if policy_config.model_based else "model-based (--model-based)"
        raise ConfigError(f"policy config: {', '.join(ignored)}: {variant} OPT-AIL's, which "
                          "this run is not")  # fmt: skip
    if not policy_config.normalize_observations:  # the settings of a mapping this run skips
        defaults = type(policy_config)()
        unread = [f"{name} {getattr(policy_config, name)!r}" for name in OBSERVATION_MAPPING
                  if getattr(policy_config, name) != getattr(defaults, name)]  # fmt: skip
        if unread:
            raise ConfigError(f"policy config: {', '.join(unread)}: the observations are fed "
                              "raw without --policy.normalize-observations")  # fmt: skip
    precision = getattr(policy_config, "matmul_precision", "fp32")  # the soft actor-critics'
    if precision == "bf16" and not bf16_products_supported():
        raise ConfigError("policy.matmul_precision bf16: this CPU computes no bfloat16 products "
                          "(oneDNN); use fp32")  # fmt: skip
    if precision == "bf16" and not bf16_rounds_operands():
        warnings.warn("policy.matmul_precision bf16: oneDNN keeps float32 products on this CPU "
                      "(no AMX); the run computes float32 numbers on oneDNN's kernels",
                      stacklevel=2)  # fmt: skip
    if config.env_steps <= config.learning_starts:  # e.g. a first try's small --env-steps
        warnings.warn(f"--env-steps {config.env_steps} <= --learning-starts "
                      f"{config.learning_starts}: this run makes no update; its checkpoint is "
                      "the actor it starts with", stacklevel=3)  # fmt: skip
    recorded = dataset.attrs.get("env_spec") or {}
    demo_horizon = recorded.get("max_episode_steps") if recorded.get("task") == task else None
    env = make_online_env(
        spec,
        task,
        backend,
        config.dataset,
        max_episode_steps=demo_horizon,
        terminate_on_success=False,
    )
    eval_env = make_online_env(spec, config.eval.task or task, config.eval.backend or
                               backend, config.dataset,
                               max_episode_steps=config.eval.max_episode_steps)  # fmt: skip
    success_test = has_success_test(config.eval.task or task)
    demos = config.max_episodes or dataset.num_episodes
    statistics = None
    if policy_config.normalize_observations:  # the imitated demonstrations', then frozen
        statistics = Normalizer.fit(
            dataset, obs_keys, mode=policy_config.normalization, episodes=range(demos),
            spread_floor=policy_config.observation_spread_floor,
        )  # fmt: skip
    action_low, action_high = env.action_space.low, env.action_space.high
    normalizer = online_normalizer(spec, action_low, action_high, statistics)
    observation_normalizer = normalizer if statistics is not None else None
    expert = expert_buffer(
        dataset, obs_keys, episodes=demos, subsample=config.demo_subsample, seed=config.seed,
        normalizer=observation_normalizer,
    )  # fmt: skip
    if policy_config.action_bounds == "demos":  # the same observation statistics
        action_low, action_high = demonstrated_action_bounds(
            expert.action, action_low, action_high, policy_config.action_bounds_margin
        )
        normalizer = online_normalizer(spec, action_low, action_high, statistics)
    expert.action[:] = np.clip(normalizer.normalize(ACTION_KEY, expert.action), -1.0, 1.0)
    env = NormalizedActions(env, action_low, action_high)

    # -- learner -------------------------------------------------------------------------
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    policy = policy_class(policy_type)(policy_config, spec, normalizer)
    policy.training_data = [dataset_record(dataset, config.dataset, demos)]
    module, name = ONLINE_ALGORITHMS[policy_type].split(":")
    try:
        algorithm = getattr(import_module(module), name)(policy, task)
    except ValueError as error:  # a setting this task or its observations cannot take
        raise ConfigError(f"policy config: {error}") from None

    # -- the run directory: locked once every input is checked, before it is touched ------
    out = Path(config.out)
    state_dir = out / STATE_DIR
    held.enter_context(lock_run(out))
    for saved in (state_dir, out / DEPLOY_SUBDIR):
        recover_dir(saved)
    if state_dir.exists() and not config.resume:
        raise ConfigError(
            f"{out}: holds a training run; resume it (drop --no-resume) or pass a new --out"
        )
    resumed = state_dir.exists()
    if resumed:
        _refuse_another_run(state_dir, policy_type, policy.training_data)
    if (state_dir / NORMALIZER_FILE).exists():
        causes = "dataset, max_episodes or normalize_observations changed"
        refuse_changed_normalizer(state_dir, normalizer, causes)
    elif state_dir.exists() and statistics is not None:  # saved before the file existed: raw
        raise CheckpointError(
            f"{state_dir}: this run stored raw observations; it cannot resume with "
            "normalize_observations on (pass a new --out)"
        )
    obs_dim = policy.encoder.output_dim
    buffer = ReplayBuffer(config.buffer_size or config.env_steps, obs_dim, policy.action_dim)
    # the env the run plays, as resolved: a rerun naming the dataset's task resumes
    run_config = {field: getattr(config, field) for field in RESUME_FIXED}
    run_config.update(task=task, backend=backend)
    settings = training_settings(config)
    progress = {"step": 0, "episode": 0, "last_save": 0, "wall_s": 0.0, "evaluations": []}
    segments = [run_segment(0, settings)]  # who trained which env steps of the run
    if resumed:
        progress, earlier = _load_state(
            state_dir, algorithm, buffer, rng, run_config, config.env_steps, recorded_env
        )
        segments = [*earlier, run_segment(progress["step"], settings)]
        if progress["step"] < config.env_steps:  # this process trains some of the run
            warn_changed_resume(out, segments[-2], segments[-1], stacklevel=4)
    evaluations: list[dict[str, Any]] = progress["evaluations"]
    horizon = env.unwrapped.max_episode_steps  # of a training episode, in env steps

    # demonstrations of another task: often a --dataset mixed up (said once nothing refused it)
    if recorded_env["task"] and task != recorded_env["task"]:
        unseen = [k for k in spec_from_env(env)["observation"]
                  if k not in obs_keys and not is_image_key(k)]  # fmt: skip
        blind = f", its policy not observing {', '.join(unseen)}" if unseen else ""
        warnings.warn(f"--task {task}: {config.dataset} demonstrates task "
                      f"{recorded_env['task']!r}; this run imitates those demonstrations on "
                      f"{task}{blind} (without --task it trains on {recorded_env['task']})",
                      stacklevel=3)  # fmt: skip

    # -- the loop ------------------------------------------------------------------------
    fields = ("step", "episodes", "train_return", *algorithm.METRICS, "steps_per_s",
              *EVAL_FIELDS)  # fmt: skip
    start, episode, last_save = progress["step"], progress["episode"], progress["last_save"]
    logger = MetricsLogger(out, config, fields, first_step=start + 1 if resumed else 0)
    wall_before, started = progress["wall_s"], time.perf_counter()
    reached = RunProgress(out, config.save_every, trained=start, saved=last_save)
    held.enter_context(_interrupt_reported(reached))  # from here on, a Ctrl-C names its save

    def progress_at(done: int) -> dict[str, Any]:
        return {"step": done, "episode": episode, "last_save": last_save,
                "wall_s": wall_before + time.perf_counter() - started,
                "evaluations": evaluations}  # fmt: skip

    def evaluation_at(done: int) -> dict[str, Any]:
        """Evaluate the deployable policy now, keep and report the row, log its fields."""
        policy.eval()  # once, not at every action (``predict_actions`` toggles it)
        result = evaluate(policy, eval_env, episodes=config.eval.episodes, seed=config.eval.seed)
        policy.train()
        evaluation = _evaluation_row(done, result, wall_before + time.perf_counter() - started)
        evaluations.append(evaluation)
        if on_evaluation is not None:
            on_evaluation(evaluation)
        outcome = f", {result.line()}" if success_test else f" over {result.episodes} episodes"
        tqdm.write(f"env step {done}: return {evaluation['eval_return']:.1f}{outcome}")
        return {k: evaluation[k] for k in EVAL_FIELDS}

    if not resumed and policy_config.bc_pretrain_steps > 0:
        loss = algorithm.pretrain_actor(expert, rng)
        tqdm.write(f"actor pretrained by BC ({policy_config.bc_pretrain_steps} steps): loss "
                   f"{loss:.3f}")  # fmt: skip
        if config.eval.episodes > 0:  # where the online phase starts from
            logger.log(0, evaluation_at(0))
    if not resumed and horizon > config.env_steps:  # the first episode may outlast the budget
        _save(out, progress_at(0), algorithm, buffer, rng, run_config, settings, segments)
    obs: np.ndarray | None = None
    episode_return, episode_steps, metrics = 0.0, 0, {}
    tick, tick_step = time.perf_counter(), start
    bar = tqdm(range(start, config.env_steps), initial=start, total=config.env_steps,
               desc=f"train {policy_type}", unit="step", disable=not config.progress)  # fmt: skip
    for step in bar:
        if obs is None:
            raw, _ = env.reset(seed=config.seed * EPISODE_SEED_STRIDE + episode)
            obs = flatten_observation(raw, obs_keys, observation_normalizer)
            episode_return, episode_steps = 0.0, 0
        action = algorithm.explore(obs)
        raw, reward, terminated, truncated, _ = env.step(action)
        next_obs = flatten_observation(raw, obs_keys, observation_normalizer)
        buffer.add(obs, action, next_obs, terminated)
        episode_return += float(reward)
        episode_steps += 1
        done = reached.trained = step + 1
        if done > config.learning_starts:
            with denormals_flushed():
                metrics = algorithm.learn(buffer, expert, rng)
        row: dict[str, Any] = {}
        if terminated or truncated:
            algorithm.end_episode(buffer, expert, episode_steps)
            episode += 1
            obs = None
            row.update(episodes=episode, train_return=episode_return)
        else:
            obs = next_obs
        if done % config.log_every == 0:
            now = time.perf_counter()
            rate = (done - tick_step) / max(now - tick, 1e-9)
            row.update(metrics, steps_per_s=rate)
            tick, tick_step = now, done
            bar.set_postfix(ret=f"{episode_return:.0f}")
            if not config.progress:  # a line in a log (a launch file's), not a bar's redraw
                tqdm.write(f"env step {done} of {config.env_steps}: {rate:.1f} env steps/s, "
                           f"{episode} episodes")  # fmt: skip
        eval_due = config.eval.every > 0 and done % config.eval.every == 0
        if config.eval.episodes > 0 and (eval_due or done == config.env_steps):
            row.update(evaluation_at(done))
        if row:
            logger.log(done, row)
        if obs is None and (done - last_save >= config.save_every
                            or done + horizon > config.env_steps):  # fmt: skip
            last_save = reached.saved = done
            _save(out, progress_at(done), algorithm, buffer, rng, run_config, settings, segments)
        elif done == config.env_steps:  # mid-episode
            _save_budget_end(out, progress_at(done), algorithm.policy, settings, segments)
    bar.close()
    logger.close()
    env.close()
    eval_env.close()
    wall_s = wall_before + time.perf_counter() - started
    summary = {"env_steps": config.env_steps, "wall_s": wall_s, "evaluations": evaluations}
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    return OnlineResult(out / DEPLOY_SUBDIR, config.env_steps, evaluations, wall_s, success_test)


@contextlib.contextmanager
def _interrupt_reported(reached: RunProgress) -> Iterator[None]:
    """On Ctrl-C, say on stderr where the run got and what a rerun continues from
    (``RunProgress.interrupted``), then let the interrupt go on."""
    try:
        yield
    except KeyboardInterrupt:
        print(reached.interrupted(), file=sys.stderr)
        raise


def learner_device(name: str, precision: str) -> torch.device:
    """The device ``OnlineTrainConfig.device`` names; ``ConfigError`` for one torch does not
    know, a CUDA device this machine lacks, another kind than cpu or cuda, or bfloat16 products
    (``matmul_precision`` "bf16": oneDNN's, a CPU mode) on a GPU."""
    device = torch_device(name)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device {name!r}: the online learners run on cpu or cuda")
    if precision == "bf16":
        raise ConfigError("policy.matmul_precision bf16 is the CPU's oneDNN mode; on "
                          f"{name} use fp32")  # fmt: skip
    return device


def _evaluation_row(step: int, result: EvalResult, wall_s: float) -> dict[str, Any]:
    low, high = result.interval
    return {
        "step": step,
        "eval_return": float(np.mean(result.returns)),
        "eval_return_std": float(np.std(result.returns)),
        "eval_success": result.success_rate,
        "eval_low": low,
        "eval_high": high,
        "returns": [float(r) for r in result.returns],
        "wall_s": wall_s,
    }


def _save(
    out: Path,
    progress: dict[str, Any],
    algorithm: Any,
    buffer: ReplayBuffer,
    rng: np.random.Generator,
    run_config: dict[str, Any],
    settings: dict[str, Any],
    segments: list[dict[str, Any]],
) -> None:
    """Write ``checkpoints/step_N`` and ``policy/`` (the deployable actor, its provenance
    with the env step, the run's ``settings`` and, resumed, its ``segments``:
    ``save_checkpoint``) and ``train_state/`` (learner, replay buffer, normalizer, counters,
    RNGs, ``segments``: the ``run_segment`` of each process that trained the run, this one
    last), each atomically."""
    from safetensors.numpy import save as serialize_numpy

    save_checkpoint(out, progress["step"], algorithm.policy, settings, segments)

    def write_state(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        buffer.save(tmp / REPLAY_FILE)
        # written by Python: a full disk is an OSError (the CLI says so in one line)
        normalizer = algorithm.policy.normalizer.state_dict()
        (tmp / NORMALIZER_FILE).write_bytes(serialize_numpy(normalizer))
        torch.save(
            {
                **progress,
                "policy_type": algorithm.policy.policy_type,
                "policy_config": dataclasses.asdict(algorithm.policy.config),
                "run_config": run_config,
                "training_data": algorithm.policy.training_data,
                "algorithm": algorithm.state_dict(),
                "segments": segments,
                **rng_states(rng, algorithm.policy.device),
            },
            tmp / "state.pt",
        )

    replace_dir(out / STATE_DIR, write_state)


def _save_budget_end(
    out: Path,
    progress: dict[str, Any],
    policy: Any,
    settings: dict[str, Any],
    segments: list[dict[str, Any]],
) -> None:
    """The budget ended mid-episode: write the deployable actor (``save_checkpoint``) and
    record the end (the counters and evaluations ``_save`` would keep) in
    ``train_state/finished.json`` (atomically), beside the state saved when the episode
    began."""
    save_checkpoint(out, progress["step"], policy, settings, segments)
    finished = out / STATE_DIR / FINISHED_FILE
    tmp = finished.with_name(finished.name + ".tmp")
    tmp.write_text(json.dumps(progress) + "\n")
    tmp.replace(finished)


def _read_state(state_dir: Path, device: torch.device | str) -> dict[str, Any]:
    """The ``state.pt`` a run saved in ``state_dir`` (an online learner's or the offline
    trainer's), its tensors on ``device``; ``CheckpointError`` if unreadable."""
    try:
        return torch.load(state_dir / "state.pt", weights_only=False, map_location=device)
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"{state_dir}: cannot resume: {error}") from None


def _refuse_another_run(
    state_dir: Path, policy_type: str, training_data: list[dict[str, Any]]
) -> None:
    """``CheckpointError`` if the run in ``state_dir`` trains another policy family (another
    online learner, or ``robot-il train bc``), or learned from other data than
    ``training_data`` (``refuse_changed_data``): said before its normalizer is compared,
    which such a run fitted on other keys or statistics ("the normalizer differs" misled)."""
    state = _read_state(state_dir, "cpu")
    if state["policy_type"] != policy_type:
        raise CheckpointError(
            f"{state_dir}: resumes a {state['policy_type']!r} run, not {policy_type!r}"
        )
    refuse_changed_data(state_dir, state.get("training_data"), training_data)


def _load_state(
    state_dir: Path,
    algorithm: Any,
    buffer: ReplayBuffer,
    rng: np.random.Generator,
    run_config: dict[str, Any],
    env_steps: int,
    recorded_env: dict[str, str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Restore what ``_save`` wrote (onto the learner's device; the family and data checked
    by ``_refuse_another_run``); returns its counters and evaluations, or, when the run's
    budget ended mid-episode at ``env_steps`` (``_save_budget_end``), those of that end
    (nothing is left to do), and the ``run_segment`` of each process that trained it (a
    save made before they were kept: one, its step only). ``ConfigError`` if the run went
    past ``env_steps``. A save's task or backend of None (saved before runs kept the env
    they resolved) was the dataset's, ``recorded_env``."""
    device = algorithm.policy.device
    state = _read_state(state_dir, device)
    saved_run = state.get("run_config")
    if saved_run is not None:
        saved_run = {
            **saved_run,
            **{k: v for k, v in recorded_env.items() if saved_run.get(k) is None},
        }
    policy_config = algorithm.policy.config
    refuse_changed_settings(state_dir, "policy config", state.get("policy_config"),
                            dataclasses.asdict(policy_config),
                            field_defaults(type(policy_config)))  # fmt: skip
    refuse_changed_settings(state_dir, "run config", saved_run, run_config,
                            field_defaults(OnlineTrainConfig))  # fmt: skip
    finished = state_dir / FINISHED_FILE
    end = json.loads(finished.read_text()) if finished.exists() else None
    done = end["step"] if end is not None else state["step"]
    if done > env_steps:  # the loop would do nothing and summarize the run as env_steps long
        raise ConfigError(f"{state_dir.parent}: this run has made {done} env steps, more than "
                          f"--env-steps {env_steps}; earlier checkpoints are in its "
                          "checkpoints/")  # fmt: skip
    try:
        algorithm.load_state_dict(state["algorithm"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{state_dir}: config changed since this run: {first}") from None
    buffer.load(state_dir / REPLAY_FILE)
    restore_rng_states(state, rng, device)
    segments = state.get("segments", [{"from_step": 0}])
    if end is not None and end["step"] == env_steps:
        return end, segments
    keys = ("step", "episode", "last_save", "wall_s", "evaluations")
    return {k: state[k] for k in keys}, segments
