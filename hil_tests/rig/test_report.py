"""The sim's report opens in a real headless Chromium: every picture decodes, no console errors."""

from __future__ import annotations

import json
import os

import pytest

from hil_tests.rig import report
from hil_tests.rig.browser import Page, find_chromium

T0 = 1_782_000_000


def _result(holds: bool = True) -> dict:
    return {
        "scenario": "normal",
        "span": {"start": T0, "end": T0 + 7200},
        "nodes": {
            "home-1": {
                "kind": "home",
                "import_wh": 1200,
                "export_wh": 0,
                "paid_msat": 180_000,
                "earned_msat": 0,
            },
            "pv-1": {
                "kind": "pv",
                "import_wh": 3,
                "export_wh": 4100,
                "paid_msat": 0,
                "earned_msat": 410_000,
            },
        },
        "power": {"home-1": [[T0, 500], [T0 + 900, 700]], "pv-1": [[T0, -3000], [T0 + 900, -3500]]},
        "slots": [
            {"start": T0, "price_msat_per_kwh": 120_000, "volume_wh": 900},
            {"start": T0 + 900, "price_msat_per_kwh": None, "volume_wh": 0},
        ],
        "channels": {"home-1>pv-1": [[T0, 1_000_000], [T0 + 900, 820_000]]},
        "imbalances": {"home-1": [[T0, 12], [T0 + 900, -5]]},
        "settlement": [
            {"node": "home-1", "period": T0, "amount_msat": -1_440},
            {"node": "pod", "period": T0, "amount_msat": 1_440},
        ],
        "invariants": {"settlement_sums_to_zero": {"holds": holds, "sum_msat": 0}},
    }


def test_report_files_and_verdict(tmp_path):
    said = ["day started LATE at 00:15:07 UTC, 15 min after the planned 00:00:00: <grid>"]
    page = report.write(tmp_path, _result(holds=False), said)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["nodes"]["pv-1"]["export_wh"] == 4100
    assert report.failed_invariants(data) == ["settlement_sums_to_zero"]
    text = page.read_text()
    assert "failed: settlement_sums_to_zero" in text
    assert (
        "<p>day started LATE at 00:15:07 UTC, 15 min after the planned 00:00:00: &lt;grid&gt;</p>"
        in text
    )
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    for name, _, _ in report.PLOTS:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_report_renders_in_headless_chromium(tmp_path):
    if find_chromium() is None:
        pytest.fail("Chromium is missing: tools/run installs chromium-headless-shell")
    page_path = report.write(tmp_path, _result())
    with Page() as page:
        page.open(page_path.as_uri())
        widths = page.eval("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        title = page.eval("document.title")
        verdict = page.eval("document.querySelector('.ok').textContent")
        page.screenshot(tmp_path / "screenshot.png")
        assert page.console == [], page.console
    assert len(widths) == len(report.PLOTS) and all(w > 100 for w in widths), widths
    assert "normal" in title
    assert verdict == "every invariant holds"


def test_browser_sees_console_errors(tmp_path):
    if find_chromium() is None:
        pytest.fail("Chromium is missing: tools/run installs chromium-headless-shell")
    bad = tmp_path / "bad.html"
    bad.write_text("<img src='missing.png'><script>console.error('boom')</script>")
    with Page() as page:
        page.open(bad.as_uri())
        page.eval("1")
        levels = [lvl for lvl, _ in page.console]
    assert "error" in levels, levels
    r, w = os.pipe()  # most likely the numbers the page's pipe had
    try:
        page.close()  # a second close leaves them alone
        os.write(w, b"kept")
        assert os.read(r, 4) == b"kept"
    finally:
        os.close(r)
        os.close(w)
