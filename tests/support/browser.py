"""A real browser for tests: Debian's headless Chromium driven by Selenium through Debian's
chromedriver.

`ensure_chromium()` installs the two packages with apt-get where they are missing and we
are root (CI runs as root on a fresh machine); elsewhere it fails with the command to run.
`chromium()` starts a headless browser with a fresh profile and nothing that reaches out
to the network on its own (no updates, sync, QUIC, background fetches), and Selenium
told to stay offline (it would otherwise look for drivers to download).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
INSTALL_TIMEOUT_S = 900


class BrowserUnavailable(RuntimeError):
    pass


def ensure_chromium() -> None:
    """Chromium and chromedriver at their Debian paths, installed now if need be."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    command = f"apt-get update && apt-get install -y {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(
            f"the browser tests need {CHROMIUM} and {CHROMEDRIVER}: run `sudo sh -c "
            f"'{command}'` (Debian/Ubuntu)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise BrowserUnavailable(f"`{' '.join(step)}` failed ({done.returncode}): "
                                     f"{done.stderr.strip()[-2000:]}")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise BrowserUnavailable(f"{' '.join(PACKAGES)} installed, yet {CHROMIUM} or "
                                 f"{CHROMEDRIVER} is missing")


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium, quit (and its profile removed) afterwards."""
    ensure_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download anything
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="seatflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def full_page_screenshot(driver: Any, path: Path) -> Path:
    """The whole page as a PNG at `path`: the viewport set to the page's size first (the
    window size of headless Chromium includes room for browser chrome it does not draw)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": int(size["width"]), "height": int(size["height"]),
        "deviceScaleFactor": 1, "mobile": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
