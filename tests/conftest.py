"""Test-wide settings and fixtures: headless MuJoCo rendering (set before any test imports
mujoco), and a headless Chromium for the tests of web pages."""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


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
