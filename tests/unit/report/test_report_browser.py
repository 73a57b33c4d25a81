"""The sweep report as a person sees it: ``report.html`` rendered by headless Chromium
(Debian's package, driven through chromedriver). Every image loads, the page has the
sections the markdown has, and a screenshot is kept in ``test-output/``."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from medsight_ray.report.build import build_report
from tests.unit.report.test_report import _sweep

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "test-output"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; CI installs it (.ci/run), so there its absence is a failure."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} and {DRIVER} are needed: apt-get install chromium chromium-driver")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No network here: nothing in the background may try to reach one.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--window-size=1280,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_report_renders_in_a_real_browser(browser, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(_sweep()))
    paths = build_report(out)
    browser.get(paths["html"].resolve().as_uri())
    browser.execute_script("return document.readyState")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) >= 2  # the curves and the health timeline at least
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == [], f"images that did not load: {broken}"
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6')).map(h => h.textContent.trim())")
    written = [m.group(2).strip() for m in re.finditer(r"^(#+) (.+)$", paths["markdown"].read_text(), re.M)]
    assert shown == written and len(written) >= 3
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    shutil.copy(shot, tmp_path / "report.png")


def test_a_missing_figure_is_caught(browser, tmp_path: Path) -> None:
    """The check can fail: a report whose figure file is gone shows a broken image."""
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(_sweep()))
    paths = build_report(out)
    next(paths["html"].parent.glob("*.png")).unlink()
    browser.get(paths["html"].resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert any(width == 0 for _, width in images)
