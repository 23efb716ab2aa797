"""What a colcon or wheel install puts under share/robot_il: every file the launch files find
there with ``$(find-pkg-share robot_il)``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_installed_share_holds_every_file_the_launch_files_find_there(tmp_path: Path) -> None:
    """launch/params/*.yaml were not installed: on a colcon workspace (ros2 launch) or a wheel
    install, deploy_sim.launch.yaml failed on its missing parameter file."""
    subprocess.run(
        [sys.executable, "setup.py", "-q", "install_data", "--install-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    share = tmp_path / "share" / "robot_il"
    wanted = {
        reference
        for launch in (ROOT / "launch").glob("*.launch.yaml")
        for reference in re.findall(r"\$\(find-pkg-share robot_il\)/([\w/.]+)", launch.read_text())
    }
    assert "launch/params/policy.yaml" in wanted
    missing = sorted(reference for reference in wanted if not (share / reference).is_file())
    assert not missing, f"not installed under share/robot_il: {missing}"
