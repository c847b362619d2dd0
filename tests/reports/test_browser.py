"""The report in a real browser: headless Chromium loads it without JavaScript errors, every figure
decodes, and a screenshot is saved (copied to $NIGHTBENCH_SCREENSHOT_DIR when set).

A probe script is injected first into a COPY of the page; it records uncaught errors (scripts and
failed resource loads) and the state of every <img>, and writes them into the DOM on `load`, which
`--dump-dom` then prints. `test_probe_catches_broken_pages` proves the probe can fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
COMMON_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--disable-extensions", "--mute-audio"]
PROBE = """<script id="nb-probe-script">
window.__nbErrors = [];
window.addEventListener("error", function (e) {
  var what = e.message || (e.target && (e.target.src || e.target.href)) || "resource error";
  window.__nbErrors.push(String(what).slice(0, 200));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__nbErrors.push("rejection: " + e.reason); });
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var out = document.createElement("pre");
  out.id = "nb-probe";
  out.textContent = JSON.stringify({errors: window.__nbErrors, images: images.length, broken: broken,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    override = os.environ.get("NIGHTBENCH_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).exists() else None)
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium binary found (apt-get install -y chromium, or set NIGHTBENCH_CHROMIUM)",
)


def _run(args: list[str], tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"  # a private profile: no state shared between runs
    return subprocess.run([BROWSER, *COMMON_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)


def probe(page: Path, tmp_path: Path) -> dict:
    """Load a probed copy of `page` and return what the probe saw."""
    text = page.read_text(encoding="utf-8")
    probed, count = re.subn(r"<head[^>]*>", lambda m: m.group(0) + PROBE, text, count=1)
    assert count == 1, "the page has no <head> to inject the probe into"
    copy = tmp_path / f"probed-{page.name}"
    copy.write_text(probed, encoding="utf-8")
    result = _run(["--virtual-time-budget=10000", "--dump-dom", copy.as_uri()], tmp_path)
    found = re.search(r'<pre id="nb-probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"the probe never reported (page did not finish loading?); stderr: {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_probe_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>x</title></head><body>"
                   '<img src="data:image/png;base64,AAAA" alt="corrupt">'
                   "<script>notDefinedAnywhere();</script></body></html>")
    seen = probe(bad, tmp_path)
    assert any("notDefinedAnywhere" in e for e in seen["errors"])
    assert seen["images"] == 1 and seen["broken"] == 1


def test_report_in_chromium(synthetic_report, tmp_path):
    seen = probe(synthetic_report, tmp_path)
    assert seen["errors"] == [], f"JavaScript errors on the page: {seen['errors']}"
    assert seen["images"] == 6, "every figure should be on the page"
    assert seen["broken"] == 0, f"{seen['broken']} figure(s) failed to load"

    height = min(max(int(seen["height"]), 900), 16000)  # the whole page in one picture
    shot = tmp_path / "report.png"
    result = _run([f"--window-size=1280,{height}", f"--screenshot={shot}", synthetic_report.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 20_000, f"no screenshot; stderr: {result.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("NIGHTBENCH_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
