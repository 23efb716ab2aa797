"""``robot-il info CHECKPOINT``: what a checkpoint is, read from its ``config.json`` without
loading its weights: the policy, the robot and task it acts for, its inputs and outputs, and
where it came from (``robot_il.provenance``; fine-tunings from its lineage, each with where
its parent came from)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory or training run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from robot_il.policies import read_checkpoint
    from robot_il.provenance import describe
    from robot_il.train.finetune import LINEAGE_KEY

    directory, saved = read_checkpoint(args.checkpoint)
    spec, config = saved["spec"], saved["config"]
    frame = f", in the {spec['frame']} frame" if spec.get("frame") else ""
    inputs = ", ".join(f"{key} {tuple(shape)}" for key, shape in spec["observation"].items())
    print(f"checkpoint   {directory}")
    version = saved.get("format_version", "none, older than the format's versions")
    variant = ", model-based" if config.get("model_based") else ""  # OPT-AIL's variants
    print(f"policy       {saved['policy_type']}{variant} (checkpoint format {version})")
    backend = f" on {spec['backend']}" if spec.get("backend") else ""
    # a dataset that named no task (a real cell's) gives a checkpoint of none; no action mode
    # reads as joint targets, as make_eval_env and the deploy node read it
    task = f"task {spec['task']}" if spec.get("task") else "no task (robot-il eval needs --task)"
    actions = f"{spec.get('action_mode') or 'joint'} actions ({spec['action_dim']})"
    print(f"acts for     {spec['robot']}, {task}{backend} at {spec['control_hz']:g} Hz, "
          f"{actions}{frame}")  # fmt: skip
    print(f"observes     {inputs}")
    cameras = [key for key in spec["observation"] if key.startswith("rgb_")]
    if cameras:  # how the frames are read: a deployment must match the crop and size
        crop = config.get("image_crop") or ()
        cut = ", ".join(config.get("image_crop_keys") or cameras)
        region = f", crop (top, left, height, width) {tuple(crop)} of {cut}" if crop else ""
        print(f"images       {config.get('image_encoder')} encoder, "
              f"{config.get('image_feature_dim')} features per camera{region}")  # fmt: skip
    if saved["policy_type"] == "dmp":
        from robot_il.policies.dmp.policy import describe_config

        print(f"controller   {describe_config(config)}")
    print(f"per step     {config.get('n_obs_steps', 1)} observation(s) in, "
          f"{config.get('horizon', 1)} action(s) predicted, "
          f"{config.get('n_action_steps', 1)} executed")  # fmt: skip
    print(f"origin       {describe(saved.get('provenance'))}")
    if command := (saved.get("provenance") or {}).get("command"):  # what a rerun types
        folder = saved["provenance"].get("cwd")
        print(f"command      {command}" + (f" (in {folder})" if folder else ""))
    for number, tuning in enumerate(saved.get(LINEAGE_KEY, []), start=1):
        settings = tuning.get("settings") or {}
        how = f" ({settings['steps']} steps, seed {settings['seed']})" if settings else ""
        print(f"fine-tuning  {number}: from {tuning['parent']} on {tuning['corrections']}{how}")
        if "parent_provenance" in tuning:  # the parent may be gone: what made it, kept here
            print(f"{'':13}its parent {describe(tuning['parent_provenance'])}")
    return 0
