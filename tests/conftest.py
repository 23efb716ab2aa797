"""Test-wide settings and fixtures: headless MuJoCo rendering (set before any test imports
mujoco), the small trained checkpoints the deployment and selection tests run, a headless
Chromium for the tests of web pages, the benchmark scripts loaded as modules, and the backstop
that ends a worker stuck past its test's timeout (hang_backstop.py)."""

import fcntl
import importlib.util
import os
import runpy
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

pytest_plugins = ["hang_backstop"]  # ends a worker stuck past its test's timeout

CHECKPOINT_SCRIPTS = (
    "make_reach_checkpoint",
    "make_eef_reach_checkpoint",
    "make_select_candidates",
)
"""Scripts in tests/ros that train the checkpoints under tests/ros/fixtures (git-ignored)."""


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Loads ``benchmarks/<name>.py`` as a fresh module (the scripts are not a package), so a
    test may patch its globals without touching another test's copy. ``benchmarks/`` is on
    the import path meanwhile, as when a script runs: the scripts import their shared
    modules (``json_lines``) by name."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def trained_checkpoints() -> None:
    """Train, once, the small BC checkpoints under ``tests/ros/fixtures`` that deployment and
    selection tests run, so no trained weights live in the repository. A checkpoint already
    there is reused (delete the folder to retrain); each script can also be run by hand.
    Parallel test workers (``pytest -n``) take turns by a file lock: one trains, the others
    wait for it and reuse its checkpoints. The scripts run in the worker's process, which
    has torch and the simulator imported already (a process per script paid about 6 s of
    CPU for its imports)."""
    ros_tests = Path(__file__).parent / "ros"
    built = ros_tests / "fixtures" / ".built"
    built.mkdir(parents=True, exist_ok=True)
    if str(ros_tests) not in sys.path:  # the scripts import each other
        sys.path.insert(0, str(ros_tests))
    with open(built / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for script in CHECKPOINT_SCRIPTS:
            marker = built / script
            if marker.exists():
                continue
            runpy.run_path(str(ros_tests / f"{script}.py"), run_name="__main__")
            marker.touch()


@pytest.fixture
def chromium():
    """A selenium WebDriver on Debian's headless Chromium with a fresh profile and no
    background traffic (skipped where ``chromium`` and ``chromium-driver`` are missing)."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install ...)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="robot_il_chromium_")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
