"""Resume, bit-exact, for each learner of the online loop that the OPT-AIL loop test does not
cover: model-based OPT-AIL, IQ-Learn, DAC, OPT-AIL with bfloat16 products and OPT-AIL with
the deviations (pretrained actor, decaying BC term, twin critics, the clone as a reference:
a resumed run must not clone again, and must keep the term's schedule and the first clone;
a reward on (s, s') with a critic warm-up, not taken again, and a clone radius without the
reference; training episodes relabelled for the BC term), on the real reach env; and
each one's checkpoint as an ordinary robot_il checkpoint. Where a GPU is visible, the
learners' state and a run of the loop on it (``--device cuda``), and its checkpoint on the
CPU."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from robot_il.policies import load_policy
from robot_il.policies.opt_ail.relu_mlp import bf16_products_supported

ROBOT_IL = str(Path(sys.executable).with_name("robot-il"))
SMALL = ["--no-progress", "--learning-starts", "40", "--log-every", "50", "--buffer-size",
         "400", "--save-every", "80", "--eval.every", "0", "--eval.episodes", "1",
         "--policy.hidden-dims", "32", "32", "--policy.batch-size", "32"]  # fmt: skip
MODEL_BASED = ["--model-based", "--policy.ensemble-size", "3", "--policy.elites", "2",
               "--policy.model-hidden-dims", "32", "32", "--policy.model-every", "50",
               "--policy.model-max-steps", "20", "--policy.rollout-every", "20",
               "--policy.rollout-states", "64", "--policy.model-batch-size", "32"]  # fmt: skip
BF16 = ["--policy.matmul-precision", "bf16", "--policy.hidden-dims", "128", "128"]
"""OPT-AIL with its hidden layers' products in bfloat16 (128 wide: the smallest that is)."""
BC = ["--policy.bc-pretrain-steps", "20", "--policy.bc-weight", "1",
      "--policy.bc-decay-updates", "150", "--policy.twin-critics",
      "--policy.bc-reference", "--policy.clone-radius", "0.3",
      "--policy.critic-layer-norm"]  # fmt: skip
"""OPT-AIL with both BC deviations, twin LayerNorm critics and the clone kept as a reference
and as the centre of the actor's mean; the BC term's weight still falls when the runs resume, and
the reference is the first clone's."""
TRANSITION_REWARD = ["--policy.reward-input", "state_next_state",
                     "--policy.critic-warmup-updates", "30",
                     "--policy.critic-updates-per-step", "2", "--policy.bc-pretrain-steps",
                     "20", "--policy.clone-radius", "0.3"]  # fmt: skip
"""OPT-AIL with a reward on [s, s'], 30 actor-frozen updates first, two updates per env step
and the clone kept only as the centre of the actor's mean: a resumed run must not warm up
again, and draws its batches as the unbroken one."""
LEARNERS = {"model-based OPT-AIL": ("opt-ail", MODEL_BASED), "IQ-Learn": ("iq-learn", []),
            "DAC": ("dac", []), "OPT-AIL bf16": ("opt-ail", BF16),
            "IQ-Learn learned temperature": ("iq-learn", ["--policy.learn-temperature"]),
            "OPT-AIL BC": ("opt-ail", BC),
            "OPT-AIL (s, s'), warm-up, radius": ("opt-ail", TRANSITION_REWARD)}  # fmt: skip
HINDSIGHT = ["--policy.bc-weight", "1", "--policy.hindsight-goal", "eef_pose-target_pos",
             "--policy.hindsight-min-move", "0"]  # fmt: skip
"""OPT-AIL whose BC term also draws every training episode relabelled to where the
gripper ended (reach's positions): a resumed run keeps the relabelled data and its draws.
Its learner state alone is checked in tests/policies/test_opt_ail.py."""
LOOP_LEARNERS = {
    **LEARNERS,
    "OPT-AIL hindsight": ("opt-ail", HINDSIGHT),
    "OPT-AIL hindsight as expert": ("opt-ail", [*HINDSIGHT, "--policy.hindsight-as-expert"]),
}
"""The loop learners; with ``hindsight_as_expert`` the relabelled episodes enter every expert
batch (reward, critic, BC term), drawn with the loop's generator."""
NEEDS_BF16 = pytest.mark.skipif(not bf16_products_supported(),
                                reason="this CPU computes no bfloat16 products")  # fmt: skip


def learner_params(learners: dict[str, tuple[str, list[str]]]) -> list:
    """The learners' names as test parameters; one whose products are bfloat16 is skipped on
    a CPU without them, where ``robot-il train`` refuses it (and its state would be float32)."""
    return [pytest.param(name, marks=NEEDS_BF16 if "bf16" in extra else ())
            for name, (_, extra) in learners.items()]  # fmt: skip


GROWING = ["--no-progress", "--learning-starts", "40", "--log-every", "50", "--save-every",
           "80", "--eval.every", "0", "--eval.episodes", "1", "--policy.hidden-dims", "32",
           "32", "--policy.batch-size", "32"]  # fmt: skip
"""``SMALL`` with the default ``buffer_size`` (0: room for ``env_steps`` transitions)."""


@pytest.fixture(scope="module")
def one_reach_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robot_il.train.demos import record_expert_demos

    return record_expert_demos("reach", tmp_path_factory.mktemp("reach1"), episodes=1, seed=3)


def settings(dataset: Path, out: Path, extra: list[str], env_steps: int) -> list[str]:
    return ["--dataset", str(dataset), "--out", str(out), *SMALL, *extra, "--env-steps",
            str(env_steps)]  # fmt: skip


def assert_equal(a: object, b: object, where: str) -> None:
    """Exact equality of nested saved state (tensors, arrays, npz bytes, numbers)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, bytes):  # a saved buffer: compare its arrays (the zip holds a date)
        with np.load(io.BytesIO(a)) as x, np.load(io.BytesIO(b)) as y:
            assert x.files == y.files, where
            for name in x.files:
                np.testing.assert_array_equal(x[name], y[name], err_msg=f"{where}.{name}")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), (where, a, b)  # NaN equals NaN here


def assert_same_training_state(a_dir: Path, b_dir: Path) -> None:
    a = torch.load(a_dir / "train_state" / "state.pt", weights_only=False)
    b = torch.load(b_dir / "train_state" / "state.pt", weights_only=False)
    assert a["step"] == b["step"] and a["episode"] == b["episode"]
    assert_equal(a["algorithm"], b["algorithm"], "algorithm")
    with np.load(a_dir / "train_state" / "replay.npz") as x, \
            np.load(b_dir / "train_state" / "replay.npz") as y:  # fmt: skip
        for field in ("obs", "action", "next_obs", "terminated"):
            np.testing.assert_array_equal(x[field], y[field])


def small_learner(name: str):
    """A learner of ``name`` on 5-D states and 2-D actions, small networks."""
    from robot_il.policies.dac import DAC, DACConfig, DACPolicy
    from robot_il.policies.iq_learn import IQLearn, IQLearnConfig, IQLearnPolicy
    from robot_il.policies.opt_ail import OPTAILConfig, OPTAILPolicy, opt_ail_learner
    from robot_il.policies.opt_ail.policy import identity_observation_normalizer
    from test_opt_ail import ACT, SPEC

    small = {"obs_keys": ("state",), "hidden_dims": (32, 32), "batch_size": 16}
    model = {"model_based": True, "ensemble_size": 3, "elites": 2, "model_hidden_dims": (32,),
             "model_every": 2, "model_max_steps": 20, "rollout_states": 32}  # fmt: skip
    build = {
        "model-based OPT-AIL": lambda: OPTAILPolicy(OPTAILConfig(**small, **model), SPEC, norm),
        "IQ-Learn": lambda: IQLearnPolicy(IQLearnConfig(**small), SPEC, norm),
        "DAC": lambda: DACPolicy(DACConfig(**small), SPEC, norm),
        "IQ-Learn learned temperature": lambda: IQLearnPolicy(
            IQLearnConfig(**small, learn_temperature=True), SPEC, norm
        ),
        "OPT-AIL bf16": lambda: OPTAILPolicy(
            OPTAILConfig(**{**small, "hidden_dims": (128, 128), "matmul_precision": "bf16"}),
            SPEC,
            norm,
        ),
        "OPT-AIL BC": lambda: OPTAILPolicy(
            OPTAILConfig(
                **small,
                bc_weight=1.0,
                bc_decay_updates=4,
                twin_critics=True,
                bc_pretrain_steps=2,
                bc_reference=True,
            ),
            SPEC,
            norm,
        ),
        "OPT-AIL (s, s'), warm-up, radius": lambda: OPTAILPolicy(
            OPTAILConfig(
                **small,
                reward_input="state_next_state",
                critic_warmup_updates=3,
                critic_updates_per_step=2,
                bc_pretrain_steps=2,
                clone_radius=0.5,
            ),
            SPEC,
            norm,
        ),
    }
    learners = {
        "model-based OPT-AIL": opt_ail_learner,
        "IQ-Learn": IQLearn,
        "DAC": DAC,
        "IQ-Learn learned temperature": IQLearn,
        "OPT-AIL bf16": opt_ail_learner,
        "OPT-AIL BC": opt_ail_learner,
        "OPT-AIL (s, s'), warm-up, radius": opt_ail_learner,
    }
    norm = identity_observation_normalizer(SPEC, -np.ones(ACT), np.ones(ACT))
    return learners[name](build[name](), "dmc:cartpole_swingup")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
"""Where the learner-state test runs: the CPU always, a GPU where one is visible."""


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("learner", learner_params(LEARNERS))
def test_learner_state_restores_every_weight_and_moment(learner: str, device: str) -> None:
    """Three ``learn`` calls from a state saved after two (through ``torch.save``, as the loop
    does) end where five uninterrupted calls end: nothing the learner needs is left out. On
    a GPU the learner is built and learns as the loop runs it there (``train_online``), its
    generator's state saved and restored beside the CPU's."""
    from test_opt_ail_model_based import real_buffer

    if device == "cuda" and learner == "OPT-AIL bf16":
        pytest.skip("bfloat16 products are the CPU's oneDNN mode (refused on a GPU)")
    on_device = torch.device(device)

    def run(agent, calls: int, rng: np.random.Generator) -> None:
        with on_device:
            for _ in range(calls):
                agent.learn(real_buffer(), real_buffer(), rng)

    def generators() -> list[torch.Tensor]:
        cuda = [torch.cuda.get_rng_state()] if device == "cuda" else []
        return [torch.get_rng_state(), *cuda]

    torch.manual_seed(7)
    with on_device:
        straight, rng = small_learner(learner), np.random.default_rng(0)
    run(straight, 2, rng)
    saved, rng_state, torch_states = io.BytesIO(), rng.bit_generator.state, generators()
    torch.save(straight.state_dict(), saved)
    run(straight, 3, rng)
    with on_device:
        resumed, rng = small_learner(learner), np.random.default_rng(123)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=False, map_location=device))
    rng.bit_generator.state = rng_state
    torch.set_rng_state(torch_states[0])
    if device == "cuda":
        torch.cuda.set_rng_state(torch_states[1])
    run(resumed, 3, rng)
    assert next(straight.critic.parameters()).device.type == device
    assert_equal(straight.state_dict(), resumed.state_dict(), "algorithm")


@pytest.mark.slow
@pytest.mark.parametrize("learner", learner_params(LOOP_LEARNERS))
def test_a_resumed_run_continues_bit_exactly(
    one_reach_demo: Path, tmp_path: Path, learner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """160 env steps in one go, and 80 then 80 more resumed from the saved state, leave the
    same networks, optimizers, model buffer and replay buffer; the checkpoint loads and
    acts as any robot_il checkpoint, and ``robot-il info`` names its variant (it named a
    model-based OPT-AIL checkpoint as model-free's)."""
    from robot_il.cli import main
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    command, extra = LOOP_LEARNERS[learner]
    policy_type = command.replace("-", "_")
    extra = ["--policy.model-based" if s == "--model-based" else s for s in extra]
    straight = train_online(load_config(policy_type, None, settings(
        one_reach_demo, tmp_path / "straight", extra, 160)))  # fmt: skip
    for env_steps in (80, 160):
        train_online(load_config(policy_type, None, settings(
            one_reach_demo, tmp_path / "resumed", extra, env_steps)))  # fmt: skip
    assert_same_training_state(tmp_path / "straight", tmp_path / "resumed")
    if "--policy.hindsight-goal" in extra:  # relabelled episodes were drawn from on resume
        state = torch.load(tmp_path / "resumed" / "train_state" / "state.pt", weights_only=False)
        assert len(state["algorithm"]["hindsight_action"]) >= 80
    policy = load_policy(straight.checkpoint)
    assert policy.policy_type == policy_type
    action = policy.act({k: np.zeros(s, np.float32) for k, s in policy.spec["observation"].items()})
    assert action.shape == (policy.action_dim,) and np.isfinite(action).all()
    capsys.readouterr()
    assert main(["info", str(straight.checkpoint)]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("policy ")]
    assert ("model-based" in line) == ("--policy.model-based" in extra), line


@pytest.mark.slow
@pytest.mark.parametrize("learner", learner_params(LEARNERS))
def test_kill_and_resume_continues_bit_exactly(
    one_reach_demo: Path, tmp_path: Path, learner: str
) -> None:
    """``robot-il train`` killed (SIGKILL) after a save and rerun ends as the run that was
    never interrupted, and its checkpoint runs in ``robot-il eval``."""
    command, extra = LEARNERS[learner]
    argv = [ROBOT_IL, "train", command]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*argv, *settings(one_reach_demo, straight, extra, 240)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    process = subprocess.Popen([*argv, *settings(one_reach_demo, killed, extra, 240)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "train_state" / "state.pt").exists():  # written after the checkpoint
        assert process.poll() is None and time.monotonic() < deadline, "no save before the end"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(killed / "train_state" / "state.pt", weights_only=False)
    assert 80 <= saved["step"] < 240, "the kill must land mid-run, after a save"
    subprocess.run([*argv, *settings(one_reach_demo, killed, extra, 240)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    assert_same_training_state(straight, killed)
    result = subprocess.run([ROBOT_IL, "eval", "--checkpoint", str(killed), "--episodes", "1",
                             "--out", str(tmp_path / "eval")], capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["policy_type"] == command.replace("-", "_")


@pytest.mark.parametrize("learner", ["OPT-AIL", "OPT-AIL BC"])
def test_a_budget_raised_mid_episode_continues_bit_exactly(
    one_reach_demo: Path,
    tmp_path: Path,
    learner: str,
    metrics_without_timing: Callable[[Path], list[dict[str, str]]],
) -> None:
    """Budgets that end mid-episode (reach's last 80 env steps), raised on each rerun with
    the replay buffer sized by them: 60, then 120, then 240 env steps end with the training
    state of 240 in one go. A cut episode is played again from its start (saved when it
    began, before the first step for the first), not replaced by a new one where the budget
    fell; a rerun with the same budget has nothing left to do. With BC pretraining, the
    actor is pretrained once. ``metrics.csv`` ends as the straight run's: the rows of a cut
    episode's replayed steps, and those of an earlier budget's end, are not kept twice."""
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    extra = BC if learner == "OPT-AIL BC" else []

    def run(out: Path, env_steps: int):
        return train_online(load_config("opt_ail", None, [
            "--dataset", str(one_reach_demo), "--out", str(out), *GROWING, *extra,
            "--env-steps", str(env_steps)]))  # fmt: skip

    run(tmp_path / "straight", 240)
    resumed = tmp_path / "resumed"
    run(resumed, 60)
    first = run(resumed, 120)
    state = resumed / "train_state" / "state.pt"
    saved = state.read_bytes()
    assert torch.load(state, weights_only=False)["step"] == 80  # the cut episode's start
    assert (resumed / "checkpoints" / "step_0000120").is_dir()
    again = run(resumed, 120)
    assert again.evaluations == first.evaluations and first.evaluations[-1]["step"] == 120
    assert state.read_bytes() == saved
    run(resumed, 240)
    assert_same_training_state(tmp_path / "straight", resumed)
    assert metrics_without_timing(resumed) == metrics_without_timing(tmp_path / "straight")


def test_resume_with_a_changed_policy_config_is_refused(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """A setting that keeps every weight's shape (here OPT-AIL's optimism weight and its
    gradient-penalty weight, or when updates start) would load the saved networks and train
    on under other settings: the rerun is refused with the fields named, and the saved
    state is kept."""
    from robot_il.errors import CheckpointError
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    out = tmp_path / "run"
    train_online(load_config("opt_ail", None, settings(one_reach_demo, out, [], 80)))
    saved = (out / "train_state" / "state.pt").read_bytes()
    changed = ["--policy.eta", "0.5", "--policy.gp-weight", "5"]
    with pytest.raises(CheckpointError, match=r"policy config changed since this run: "
                       r"eta 0\.001 -> 0\.5; gp_weight 0\.0 -> 5\.0"):  # fmt: skip
        train_online(load_config("opt_ail", None, settings(one_reach_demo, out, changed, 160)))
    later_start = settings(one_reach_demo, out, [], 160) + ["--learning-starts", "60"]
    with pytest.raises(CheckpointError, match=r"run config changed since this run: "
                       r"learning_starts 40 -> 60"):  # fmt: skip
        train_online(load_config("opt_ail", None, later_start))
    assert (out / "train_state" / "state.pt").read_bytes() == saved


def test_resume_on_a_re_recorded_demonstration_is_refused(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """The expert data are part of what the run learned (its reward too): a demonstration
    re-recorded at its path since the run started is refused before an env step, and the
    saved state is kept."""
    import shutil

    import zarr

    from robot_il.errors import CheckpointError
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    demo = Path(shutil.copytree(one_reach_demo.parent, tmp_path / "demo")) / one_reach_demo.name
    out = tmp_path / "run"
    train_online(load_config("opt_ail", None, settings(demo, out, [], 80)))
    saved = (out / "train_state" / "state.pt").read_bytes()
    zarr.open_group(str(demo), mode="r+")["data"]["action"][0, 0] += 0.01
    with pytest.raises(CheckpointError, match="this run started on .* it would resume on data"):
        train_online(load_config("opt_ail", None, settings(demo, out, [], 160)))
    assert (out / "train_state" / "state.pt").read_bytes() == saved


def test_a_setting_the_save_lacks_is_compared_with_its_default(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """A run saved before a setting existed trained as that setting's default does (a new
    setting defaults to the old behaviour): resuming it under another value is refused with
    the default named, and under the default it goes on."""
    from robot_il.errors import CheckpointError
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    out = tmp_path / "run"
    train_online(load_config("opt_ail", None, settings(one_reach_demo, out, [], 80)))
    path = out / "train_state" / "state.pt"
    state = torch.load(path, weights_only=False)
    del state["policy_config"]["eta"], state["run_config"]["learning_starts"]
    torch.save(state, path)
    older_save = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"policy config changed since this run: "
                       r"eta 0\.001 \(its default; not saved\) -> 0\.5 "):  # fmt: skip
        train_online(
            load_config(
                "opt_ail", None, settings(one_reach_demo, out, ["--policy.eta", "0.5"], 160)
            )
        )
    with pytest.raises(CheckpointError, match=r"run config changed since this run: "
                       r"learning_starts 2000 \(its default; not saved\) -> 40 "):  # fmt: skip
        train_online(load_config("opt_ail", None, settings(one_reach_demo, out, [], 160)))
    assert path.read_bytes() == older_save
    at_default = settings(one_reach_demo, out, [], 160) + ["--learning-starts", "2000"]
    train_online(load_config("opt_ail", None, at_default))
    assert torch.load(path, weights_only=False)["step"] == 160


@CUDA
def test_a_policy_learned_on_the_gpu_acts_the_same_from_its_checkpoint_on_the_cpu(
    tmp_path: Path,
) -> None:
    """A learner trained on a GPU saves a checkpoint (safetensors, moved to the CPU) that
    loads on a machine without one and acts as the GPU's policy does (float32 on either
    side: the same actions within 1e-5)."""
    from test_opt_ail import OBS
    from test_opt_ail_model_based import real_buffer

    torch.manual_seed(0)
    with torch.device("cuda"):
        agent, rng = small_learner("DAC"), np.random.default_rng(0)
        for _ in range(5):
            agent.learn(real_buffer(), real_buffer(), rng)
    agent.policy.save(tmp_path / "policy")
    on_cpu = load_policy(tmp_path / "policy")
    assert on_cpu.device.type == "cpu" and agent.policy.device.type == "cuda"
    agent.policy.eval()
    for seed in range(3):
        obs = {"state": np.random.default_rng(seed).standard_normal(OBS).astype(np.float32)}
        np.testing.assert_allclose(on_cpu.act(obs), agent.policy.act(obs), atol=1e-5)


@CUDA
@pytest.mark.slow
def test_a_run_on_the_gpu_resumes_bit_exactly_and_its_checkpoint_acts_on_the_cpu(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """``--device cuda``: 160 env steps in one go and 80 then 80 more resumed (the GPU's
    generator saved and restored) leave the same training state; the checkpoint acts on the
    CPU as on the GPU."""
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    extra = ["--device", "cuda"]
    straight = train_online(load_config("opt_ail", None, settings(
        one_reach_demo, tmp_path / "straight", extra, 160)))  # fmt: skip
    for env_steps in (80, 160):
        train_online(load_config("opt_ail", None, settings(
            one_reach_demo, tmp_path / "resumed", extra, env_steps)))  # fmt: skip
    assert_same_training_state(tmp_path / "straight", tmp_path / "resumed")
    on_cpu = load_policy(straight.checkpoint)
    on_gpu = load_policy(straight.checkpoint, device="cuda")
    obs = {k: np.full(s, 0.1, np.float32) for k, s in on_cpu.spec["observation"].items()}
    np.testing.assert_allclose(on_cpu.act(obs), on_gpu.act(obs), atol=1e-5)


def test_an_online_checkpoint_records_its_env_step_and_the_settings_a_config_file_gave(
    one_reach_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As bc's and diffusion's: each checkpoint of an online run (the one saved before its
    first episode, and the actor at a budget that ended mid-episode) keeps the run's
    settings, the seed a ``--config`` file gave among them, and its env step; ``robot-il
    info`` shows them."""
    import yaml

    from robot_il.cli import main

    config = tmp_path / "opt_ail.yaml"
    config.write_text(yaml.safe_dump({"seed": 3, "env_steps": 30}))
    run = tmp_path / "run"
    assert main(["train", "opt-ail", "--config", str(config), "--dataset", str(one_reach_demo),
                 "--out", str(run), *SMALL, "--eval.episodes", "0"]) == 0  # fmt: skip
    for checkpoint, step in ((run / "policy", 30), (run / "checkpoints" / "step_0000000", 0)):
        saved = json.loads((checkpoint / "config.json").read_text())["provenance"]["training"]
        assert saved["step"] == step and saved["config"]["seed"] == 3
        assert saved["config"]["dataset"] == str(one_reach_demo) and "policy" not in saved["config"]
        capsys.readouterr()
        assert main(["info", str(checkpoint)]) == 0
        assert f"; env step {step} of 30, seed 3\n" in capsys.readouterr().out


def interrupted_online(config: Any, updates: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``config`` (``train_online``) as a run stopped by Ctrl-C as its ``updates``-th
    update begins (env step ``learning_starts + updates`` of a new run, its step made)."""
    from robot_il.train import online

    calls = {"n": 0}
    flushed = online.denormals_flushed

    @contextlib.contextmanager
    def then_interrupt() -> Iterator[None]:
        calls["n"] += 1
        if calls["n"] == updates:
            raise KeyboardInterrupt
        with flushed():
            yield

    with monkeypatch.context() as patch:
        patch.setattr(online, "denormals_flushed", then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            online.train_online(config)


def test_an_interrupted_online_run_says_what_it_saved_and_how_to_resume(
    one_reach_demo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As bc's: Ctrl-C keeps the run's last save (at an episode's end), which may be none yet:
    the run says which and whether a rerun resumes or starts over. Before: 'robot-il:
    interrupted' alone."""
    from robot_il.train.config import load_config

    out = tmp_path / "run"

    def config() -> Any:
        return load_config("opt_ail", None, settings(one_reach_demo, out, [], 240))

    interrupted_online(config(), 20, monkeypatch)  # step 60, reach's episodes are 80 steps
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{out}: interrupted at step 60, before its first save (--save-every 80): the same "
        "command again starts over"
    )
    interrupted_online(config(), 110, monkeypatch)  # saved at 80
    interrupted_online(config(), 5, monkeypatch)  # resumed at 80
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{out}: interrupted at step 85; saved at step 80: the same command again resumes from "
        "there"
    )


def test_a_resumed_online_runs_checkpoint_names_each_resume_and_what_changed_at_it(
    one_reach_demo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As bc's: a resume under other threads (or device, code, libraries), which changes the
    numbers, is warned about, and the checkpoints name each resume; ``robot-il info`` shows
    them. Before: an online run's checkpoint named its last process alone, and warned of
    nothing."""
    from robot_il.cli import main
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    out = tmp_path / "run"

    def config(*extra: str) -> Any:
        return load_config("opt_ail", None, settings(one_reach_demo, out, [*extra], 240))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interrupted_online(config(), 110, monkeypatch)  # step 150, saved at 80
        interrupted_online(config("--threads", "2"), 85, monkeypatch)  # step 165, saved at 160
        train_online(config())
    assert [str(w.message) for w in caught if "resumed at" in str(w.message)] == [
        f"{out}: resumed at step {step} with threads {change}: its weights may differ from an "
        "uninterrupted run's (its checkpoints record each part)"
        for step, change in ((80, "1 -> 2"), (160, "2 -> 1"))
    ]
    saved = json.loads((out / "policy" / "config.json").read_text())["provenance"]["training"]
    assert [(s["from_step"], s["threads"]) for s in saved["segments"]] == [
        (0, 1), (80, 2), (160, 1)
    ]  # fmt: skip
    first = json.loads((out / "checkpoints" / "step_0000080" / "config.json").read_text())
    assert "segments" not in first["provenance"]["training"]  # saved by the first process
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert ("; env step 240 of 240, seed 0; resumed at step 80 with threads 1 -> 2; resumed at "
            "step 160 with threads 2 -> 1\n") in capsys.readouterr().out  # fmt: skip
