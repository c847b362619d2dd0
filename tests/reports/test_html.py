"""The HTML report: sections, numbers, embedded figures, CSV downloads, environment, escaping.

And the report in a real browser: headless Chromium loads it without JavaScript errors, every figure
decodes, and a screenshot is saved (copied to $NIGHTBENCH_SCREENSHOT_DIR when set). A probe script is
injected first into a COPY of the page; it records uncaught errors (scripts and failed resource loads)
and the state of every <img>, and writes them into the DOM on `load`, which `--dump-dom` then prints.
`test_probe_catches_broken_pages` proves the probe can fail. Without Chromium those two tests skip.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from nightbench.reports import build_report, tables
from nightbench.reports.html import csv_data_uri

SUITE_SECTIONS = ["suite-bert_mlm", "suite-resnet50_imagenet", "suite-small_batch_variance", "suite-memory_overhead"]


class PageParser(HTMLParser):
    """Collects ids, tags, images, links and text (character references already decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.images: list[dict[str, str]] = []
        self.links: list[dict[str, str]] = []
        self.text: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self._section: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "section":
            self._section = attrs.get("id")
        if tag == "img":
            self.images.append(attrs)
        if tag == "a":
            self.links.append(attrs)

    def handle_data(self, data):
        self.text.append(data)
        if self._section:
            self.sections.setdefault(self._section, []).append(data)

    def section_text(self, key: str) -> str:
        return " ".join(self.sections.get(key, []))


def parse(path) -> tuple[str, PageParser]:
    html = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(html)
    return html, parser


@pytest.fixture(scope="module")
def page(synthetic_report):
    return parse(synthetic_report)


def test_sections_and_table_of_contents(page):
    _, parser = page
    for key in ["claims", *SUITE_SECTIONS, "profile-section", "runs-section", "environment"]:
        assert key in parser.ids
        assert {"href": f"#{key}"} in [{"href": link.get("href")} for link in parser.links]


def test_numbers_shown(page, synthetic_results):
    _, parser = page
    bert = parser.section_text("suite-bert_mlm")
    expected = tables.leaderboard(synthetic_results.runs, "bert_mlm").raw.set_index("optimizer").loc["adam"]
    assert f"{expected['mean']:.4g} [{expected['ci_low']:.4g}, {expected['ci_high']:.4g}]" in bert
    assert "0.4013" in bert  # nigt's final-protocol mean
    assert "2.00×" in parser.section_text("suite-memory_overhead")  # adam / sgd step time
    claims = parser.section_text("claims")
    assert claims.count("at this run's scale (preset ci)") == 4
    assert "supports" in claims and "cannot tell" in claims


def test_figures_embedded_as_png(page):
    _, parser = page
    assert len(parser.images) == 6  # bert curves + lr sweep, resnet curves, floors, memory bars, profile
    for image in parser.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:4] == b"\x89PNG"
        assert image["alt"]


def test_figure_alt_text_names_the_optimizers_drawn(page, synthetic):
    _, parser = page
    curves = [image["alt"] for image in parser.images if image["alt"].startswith("Learning curves")]
    bert = next(alt for alt in curves if "bert_mlm" in alt)
    assert synthetic.evil in bert and "adam" in bert and "nigt" in bert  # the plugin is drawn like any other
    resnet = next(alt for alt in curves if "resnet50_imagenet" in alt)
    assert synthetic.evil not in resnet and "sgd" in resnet  # it has no resnet runs
    memory = next(image["alt"] for image in parser.images if image["alt"].startswith("Optimizer state"))
    assert all(name in memory for name in synthetic.memory_copies)


def _csv(parser, name) -> pd.DataFrame:
    link = next(link for link in parser.links if link.get("download") == name)
    head, payload = link["href"].split(",", 1)
    assert head == "data:text/csv;charset=utf-8;base64"
    return pd.read_csv(io.StringIO(base64.b64decode(payload).decode("utf-8")))


def test_csv_downloads_hold_the_table_data(page, synthetic, synthetic_results):
    _, parser = page
    csv = _csv(parser, "leaderboard-bert_mlm.csv")
    raw = tables.leaderboard(synthetic_results.runs, "bert_mlm").raw
    assert list(csv.columns) == list(raw.columns)
    assert list(csv["optimizer"]) == list(raw["optimizer"])
    assert synthetic.evil in set(csv["optimizer"])  # raw data, unescaped, inside the CSV
    pd.testing.assert_series_equal(csv["mean"], raw["mean"], check_names=False)
    pd.testing.assert_series_equal(csv["ci_high"], raw["ci_high"], check_names=False)
    memory = _csv(parser, "memory.csv")
    assert set(memory["state_bytes_per_param"]) == {4.0 * c for c in synthetic.memory_copies.values()}
    downloads = {link.get("download") for link in parser.links if link.get("download")}
    assert {"floors.csv", "step-time-ratio.csv", "runs.csv", "problems.csv", "tuning-bert_mlm.csv"} <= downloads


def test_environment_and_header(page, synthetic):
    _, parser = page
    env = parser.section_text("environment")
    for key in ("git_commit", "torch", "cpu", "python"):
        assert key in env and str(synthetic.environment[key]) in env
    assert "Preset" in " ".join(parser.text) and "ci" in env


def test_damaged_runs_listed(page):
    _, parser = page
    runs = parser.section_text("runs-section")
    for run_dir in ("bert_mlm/ci/adam/broken_config", "bert_mlm/ci/nigt/half_written",
                    "resnet50_imagenet/ci/sgd/bad_summary", "resnet50_imagenet/ci/adam/empty_dir"):
        assert run_dir in runs
    assert "config.json is not valid JSON" in runs


def test_strings_from_results_are_escaped(page, synthetic):
    html, parser = page
    assert "<script" not in html.lower()  # the page has no script at all, and no injected one
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "script" not in parser.tags and "b" in parser.tags  # <b> appears only from the template
    assert synthetic.evil in " ".join(parser.text)  # shown as text


def test_self_contained(page):
    _, parser = page
    for link in parser.links:
        assert link.get("href", "").startswith(("#", "data:"))
    for image in parser.images:
        assert image["src"].startswith("data:")
    html, _ = page
    assert "http://" not in html and "https://" not in html


def test_missing_suites_say_so(tmp_path, run_writer):
    results = tmp_path / "results"
    writer = run_writer(results)
    for seed in range(2):
        writer.training_run("bert_mlm", "adam", seed, 0.4 + seed / 100, metric="mlm_accuracy", target=0.3)
    path = build_report(results, tmp_path / "out" / "deeper" / "report.html")
    assert path.exists()
    _, parser = parse(path)
    for key in SUITE_SECTIONS[1:]:
        assert "No runs of this suite" in parser.section_text(key)
    assert "No learning-rate sweep ran" in parser.section_text("suite-bert_mlm")
    assert len(parser.images) == 2  # learning curves and the performance profile


def test_empty_results_render(tmp_path):
    path = build_report(tmp_path, tmp_path / "report.html")
    _, parser = parse(path)
    assert "No run directories were found" in parser.section_text("runs-section")
    assert not parser.images


def test_missing_results_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        build_report(tmp_path / "nope", tmp_path / "report.html")


def test_csv_cells_cannot_become_spreadsheet_formulas():
    uri = csv_data_uri(pd.DataFrame({"name": ["=HYPERLINK(\"x\")", "-1.5", "adam"], "v": [-1.0, 2.0, 3.0]}))
    text = base64.b64decode(unquote(uri.split(",", 1)[1])).decode()
    rows = pd.read_csv(io.StringIO(text), dtype=str)
    assert list(rows["name"]) == ["'=HYPERLINK(\"x\")", "-1.5", "adam"]
    assert list(rows["v"]) == ["-1.0", "2.0", "3.0"]


def test_several_presets_are_kept_apart(tmp_path, run_writer):
    results = tmp_path / "results"
    for preset, shift in (("ci", 0.0), ("small", 0.2)):
        writer = run_writer(results, preset=preset)
        for optimizer, base in (("adam", 0.3), ("nigt", 0.35)):
            for seed in range(2):
                writer.training_run("bert_mlm", optimizer, seed, base + shift + seed / 100, metric="mlm_accuracy",
                                    target=0.3)
    _, parser = parse(build_report(results, tmp_path / "report.html"))
    assert {"curves-bert_mlm-ci", "curves-bert_mlm-small"} <= parser.ids  # one figure per preset
    csv = _csv(parser, "leaderboard-bert_mlm.csv")
    assert sorted(zip(csv["preset"], csv["optimizer"])) == [("ci", "adam"), ("ci", "nigt"),
                                                             ("small", "adam"), ("small", "nigt")]
    # the claim is judged at the largest scale present
    assert "at this run's scale (preset small)" in parser.section_text("claims")
    assert "0.555" in parser.section_text("claims")  # nigt's small-preset mean (0.55 + 0.56) / 2


def test_per_seed_csv_has_one_row_per_run(page, synthetic, synthetic_results):
    _, parser = page
    seeds = _csv(parser, "seeds-bert_mlm.csv")
    written = [p for p in synthetic.run_dirs if p.relative_to(synthetic.root).parts[0] == "bert_mlm"]
    assert sorted(seeds["run_dir"]) == sorted(p.relative_to(synthetic.root).as_posix() for p in written)
    completed = seeds[(seeds["status"] == "completed") & (seeds["protocol"] == "final")]
    assert sorted(completed["final_value"]) == pytest.approx(sorted(synthetic.final_values[("bert_mlm", "nigt",
                                                                                             "final")]))
    assert sorted(completed["final.mlm_accuracy"]) == pytest.approx(sorted(completed["final_value"]))
    reported = seeds[seeds["reported"]]
    assert set(reported["protocol"]) == {"default", "final"}  # the tuning runs are listed, not reported
    assert not ((reported["optimizer"] == "nigt") & (reported["protocol"] == "default")).any()
    assert "Download per-seed CSV" in " ".join(parser.text)


def test_claims_carry_difference_power_and_seeds(page):
    _, parser = page
    claims = parser.section_text("claims")
    for heading in ("Difference, interval", "Detectable at 80% power", "Seeds to detect the difference"):
        assert heading in claims
    assert "Welch t, 95%" in claims and "scipy.stats.nct" in claims
    assert "seeds per optimizer would separate a difference this size" in claims  # resnet cannot tell


def test_score_table_beside_the_profile(page):
    _, parser = page
    profile = parser.section_text("profile-section")
    assert "Benchmark score per optimizer" in profile and "r_max = 4" in profile
    assert "benchmark-score" in parser.ids


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

NEEDS_BROWSER = pytest.mark.skipif(
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


@NEEDS_BROWSER
def test_probe_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>x</title></head><body>"
                   '<img src="data:image/png;base64,AAAA" alt="corrupt">'
                   "<script>notDefinedAnywhere();</script></body></html>")
    seen = probe(bad, tmp_path)
    assert any("notDefinedAnywhere" in e for e in seen["errors"])
    assert seen["images"] == 1 and seen["broken"] == 1


@NEEDS_BROWSER
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
