"""``benchmarks/opt_ail.py``'s result rows: a run's row replaces the one it rewrites (a
resumed run evaluates again the steps after its last save), rows from before
``expert_seed`` included, and a rerun on another CPU keeps the first's; a final evaluation
refuses a run without its checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def opt_ail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, load_benchmark) -> ModuleType:
    """The benchmark module, writing its rows to ``tmp_path``."""
    module = load_benchmark("opt_ail")
    monkeypatch.setattr(module, "RESULTS", tmp_path / "opt_ail.json")
    return module


def _row(**changes) -> dict:
    row = {"task": "dmc:walker_walk", "method": "opt_ail", "variant": "model-free",
           "profile": "cpu", "obs_normalization": None, "precision": None, "seed": 0,
           "demos": 1, "subsample": 1, "env_steps": 5000, "return": 100.0,
           "expert_return": 920.0}  # fmt: skip
    return row | changes


def test_a_rewritten_row_replaces_its_row_from_before_expert_seed(opt_ail: ModuleType) -> None:
    """A DMC row without ``expert_seed`` imitated seed 0's expert (``row_expert_seed``): the
    same run's row at the same step with ``expert_seed`` 0 (a dataset without the attribute)
    replaces it; one on seed 1's expert is another run's and is kept beside it."""
    opt_ail.append_row(_row())
    opt_ail.append_row(_row(expert_seed=0, **{"return": 120.0}))
    assert [r["return"] for r in opt_ail.existing_rows()] == [120.0]
    opt_ail.append_row(_row(expert_seed=1, **{"return": 130.0}))
    assert [r["return"] for r in opt_ail.existing_rows()] == [120.0, 130.0]
    ur5e = {"task": "ur5e:push", "demos": 10}
    opt_ail.append_row(_row(**ur5e))
    opt_ail.append_row(_row(**ur5e, expert_seed=None, **{"return": 0.5}))
    assert [r["return"] for r in opt_ail.existing_rows()] == [120.0, 130.0, 0.5]
    # each row names the code and the CPU that computed it
    from robot_il.provenance import code_provenance, revision

    assert {(r["code"], r["cpu"]) for r in opt_ail.existing_rows()} == {
        (revision(), code_provenance()["cpu"])
    }


def test_a_rerun_on_another_cpu_keeps_the_first_cpus_rows(opt_ail: ModuleType) -> None:
    """A ``bf16`` run's rows say whether the CPU rounded the products (``bf16_rounds``): the
    same run rerun on a CPU that does keeps the rows of one that did not, and replaces only
    its own when it evaluates a step again."""
    bf16 = {"precision": "bf16", "expert_seed": 1}
    opt_ail.append_row(_row(**bf16, bf16_rounds=False))
    opt_ail.append_row(_row(**bf16, bf16_rounds=True, **{"return": 120.0}))
    opt_ail.append_row(_row(**bf16, bf16_rounds=True, **{"return": 130.0}))
    assert [r["return"] for r in opt_ail.existing_rows()] == [100.0, 130.0]


def test_a_final_evaluation_needs_the_runs_checkpoint_at_the_budget(
    opt_ail: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--final-episodes`` refuses, naming the path, a run without a checkpoint at
    ``--env-steps``, before it evaluates or writes anything."""
    run = tmp_path / "run"
    (run / "checkpoints" / "step_0050000").mkdir(parents=True)
    monkeypatch.setattr(opt_ail, "run_directory", lambda args, seed: run)
    monkeypatch.setattr(opt_ail, "FINAL_RESULTS", tmp_path / "final.json")
    args = _online_args(task="dmc:walker_walk", seeds=[0], env_steps=100_000, final_episodes=5)
    with pytest.raises(SystemExit, match=r"step_0100000: no checkpoint at 100000 env steps"):
        opt_ail.run_final_evaluation(args)
    assert not (tmp_path / "final.json").exists()


def _online_args(**changes) -> argparse.Namespace:
    """``run_online``'s arguments with no deviation, and ``changes``."""
    args = {"part": "opt_ail", "model_based": False, "bc_pretrain_steps": 0, "bc_weight": 0.0,
            "bc_decay_updates": 0, "bc_loss": "nll", "log_std_min": -5.0, "twin_critics": False,
            "bc_reference": False, "clone_radius": 0.0, "critic_layer_norm": False,
            "actor_lr": None, "action_bounds": "env",
            "action_bounds_margin": 1.5,
            "reward_input": "state_action", "reward_obs_keys": [], "reward_offsets": [],
            "reward_source": "learned", "critic_warmup_updates": 0,
            "critic_updates_per_step": 1, "hindsight_goal": "",
            "hindsight_min_move": 0.05, "hindsight_as_expert": False,
            "learn_temperature": False, "task_frame": None,
            "reward_output": "tanh", "reward_drift_weight": 0.0, "td_clip": None}  # fmt: skip
    return argparse.Namespace(**(args | changes))


def test_a_run_directory_names_too_many_deviations_by_their_digest(opt_ail: ModuleType) -> None:
    """Deviations that would spell a run directory's name past the file systems' 255 bytes
    (push with hindsight as expert: 259, 'File name too long' before any step) are named by
    their digest, apart from other deviations'; names that fit keep their spelling (a run
    started before resumes)."""
    push = {"task": "ur5e:push", "demos": 10, "subsample": 1, "obs_normalization": "gaussian",
            "precision": "bf16", "profile": "cpu", "bc_pretrain_steps": 10_000,
            "bc_weight": 1.0, "action_bounds": "demos", "twin_critics": True, "actor_lr": 3e-4,
            "hindsight_goal": "object_pose-target_pos", "reward_input": "state_next_state",
            "reward_obs_keys": ["eef_pose", "object_pose", "target_pos"],
            "reward_offsets": ["object_pose-target_pos", "eef_pose-object_pose"]}  # fmt: skip
    spelled = opt_ail.run_directory(_online_args(**push), 2).name
    assert len(spelled) == 251 and "hindsightobject_pose-target_pos0.05_reward" in spelled
    digests = {opt_ail.run_directory(_online_args(**push, hindsight_as_expert=True,
                                                  hindsight_min_move=move), 0).name
               for move in (0.05, 0.1)}  # fmt: skip
    assert len(digests) == 2
    assert all(name.startswith("s0_d10_k1_obsgaussian_bf16_dev") and len(name) < 60
               for name in digests)  # fmt: skip


def test_each_deviation_names_its_runs_apart(opt_ail: ModuleType) -> None:
    """The (s, s') reward, the reward's keys, the critic warm-up, the clone as a reference and
    several updates per env step, alone or together, name different runs (``deviation`` keys
    both the rows and the run directory)."""
    names = [
        opt_ail.deviation(_online_args(**changes))
        for changes in (
            {},
            {"reward_input": "state_next_state"},
            {"critic_warmup_updates": 500},
            {"critic_warmup_updates": 5000},
            {"reward_input": "state_next_state", "critic_warmup_updates": 500},
            {"reward_obs_keys": ["object_pose"]},
            {"reward_obs_keys": ["eef_pose", "object_pose"]},
            {"reward_offsets": ["object_pose-target_pos"]},
            {"reward_offsets": ["object_pose-target_pos", "eef_pose-object_pose"]},
            {"bc_loss": "mse"},
            {"reward_source": "task"},
            {"bc_pretrain_steps": 100},
            {"task_frame": "push"},
            {"bc_pretrain_steps": 100, "bc_reference": True},
            {"bc_pretrain_steps": 100, "clone_radius": 0.2},
            {"bc_pretrain_steps": 100, "clone_radius": 0.1},
            {"critic_layer_norm": True},
            {"bc_weight": 1.0, "hindsight_goal": "object_pose-target_pos"},
            {
                "bc_weight": 1.0,
                "hindsight_goal": "object_pose-target_pos",
                "hindsight_min_move": 0.1,
            },
            {
                "bc_weight": 1.0,
                "hindsight_goal": "object_pose-target_pos",
                "hindsight_as_expert": True,
            },
            {"actor_lr": 3e-4},
            {"learn_temperature": True},
            {"critic_updates_per_step": 4},
            {"critic_updates_per_step": 4, "reward_source": "task"},
            {"reward_output": "linear"},
            {"reward_output": "linear", "td_clip": 1000.0},
            {"reward_output": "linear", "reward_drift_weight": 1e-3},
            {"td_clip": 50.0},
        )
    ]
    assert names[0] is None
    assert len(set(names)) == len(names)


def test_a_deviation_names_the_td_bound_however_it_was_reached(opt_ail: ModuleType) -> None:
    """The linear reward's default bound (none) and an explicit ``--td-clip inf`` train
    alike and name one run, the one session 26's runs resume; the paper's clip given
    explicitly is no deviation."""
    linear = opt_ail.deviation(_online_args(reward_output="linear"))
    assert linear == "linear-reward, td-clip inf"
    assert opt_ail.deviation(_online_args(reward_output="linear", td_clip=float("inf"))) == linear
    assert opt_ail.deviation(_online_args(td_clip=100.0)) is None


@pytest.mark.parametrize("changes", [{"reward_input": "state_next_state"},
                                     {"reward_obs_keys": ["object_pose"]},
                                     {"reward_offsets": ["object_pose-target_pos"]},
                                     {"reward_source": "task"},
                                     {"critic_warmup_updates": 10},
                                     {"critic_updates_per_step": 2},
                                     {"td_clip": float("inf")}])  # fmt: skip
def test_iq_learn_refuses_the_reward_deviations(opt_ail: ModuleType, changes: dict) -> None:
    """IQ-Learn has no reward net: its run would carry a deviation it does not have."""
    with pytest.raises(SystemExit, match="IQ-Learn has no reward net"):
        opt_ail.run_online(_online_args(part="iq_learn", **changes))


@pytest.mark.parametrize("part", ["dac", "iq_learn"])
@pytest.mark.parametrize("changes", [{"reward_output": "linear"}, {"reward_drift_weight": 1e-3}])
def test_only_opt_ail_takes_a_linear_reward_or_its_drift_penalty(
    opt_ail: ModuleType, part: str, changes: dict
) -> None:
    """DAC's reward is its logit already and IQ-Learn has none: a run of either named for a
    linear reward or a drift penalty would carry a deviation it does not have."""
    with pytest.raises(SystemExit, match="--reward-output and --reward-drift-weight apply to"):
        opt_ail.run_online(_online_args(part=part, **changes))


@pytest.mark.parametrize("part", ["opt_ail", "dac"])
def test_each_reward_flag_reaches_the_runs_config(
    opt_ail: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, part: str
) -> None:
    """The reward net's flags land on the learner's config fields for OPT-AIL and DAC alike
    (the linear reward on OPT-AIL's only), so a run named for a deviation trains with it."""
    monkeypatch.setattr(opt_ail, "RUNS", tmp_path)
    monkeypatch.setattr(opt_ail, "dataset_path", lambda *_: tmp_path / "demos.zarr")
    monkeypatch.setattr(opt_ail, "expert_seed", lambda *_: 1)
    flags = {"reward_input": "state_next_state", "critic_warmup_updates": 10,
             "critic_updates_per_step": 2, "td_clip": float("inf")}  # fmt: skip
    output = {"reward_output": "linear", "reward_drift_weight": 1e-3} if part == "opt_ail" else {}
    args = _online_args(part=part, task="dmc:walker_walk", demos=1, subsample=1,
                        env_steps=1000, save_every=500, eval_every=500, precision="fp32",
                        profile="cpu", obs_normalization="raw", **flags, **output)  # fmt: skip
    config = opt_ail.online_config(args, 3)
    assert {name: getattr(config.policy, name) for name in flags} == flags
    assert config.policy.reward_output == ("linear" if part == "opt_ail" else "tanh")
    if part == "opt_ail":
        assert config.policy.reward_drift_weight == 1e-3
    assert (config.seed, config.env_steps) == (3, 1000)
