"""The sim's report: `report.json`, one PNG per picture and a self-contained `report.html`.

The HTML embeds its PNGs as data URIs and has no external reference, so it opens offline and can
be mailed as one file. Input is one plain dict (what `report.json` holds):

    {"scenario": "normal", "span": {"start": t0, "end": t1},
     "nodes": {name: {"kind": "home", "import_wh": .., "export_wh": .., "paid_msat": ..,
                      "earned_msat": .., "money_delta_msat": .., ...}},  # sim/money.py
     "power": {name: [[t, watts], ...]},                 # per node, e.g. from its signed readings
     "slots": [{"start": t, "price_msat_per_kwh": p or None, "volume_wh": wh}, ...],
     "channels": {label: [[t, local_msat], ...]},
     "imbalances": {name: [[slot_start, wh], ...]},     # + took more than it bought
     "settlement": [{"node": .., "period": .., "receipts_paid_msat": .., ..., "amount_msat": ..}],
     "invariants": {name: {"holds": bool, ...figures}},
     "money": {"deposits_msat": .., "holdings_msat": .., "unassigned_msat": .., ...},
     "service": {"prepaid": n, "bought_credit": k, "got_delivery": m, ...},
     "day_start": {"planned": t, "started": t, "late": bool, "late_s": s, ...}}  # sim/day_start.py

Missing sections are drawn as "nothing recorded" rather than failing: a run that died early
still gets a report that says what it saw.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

PLOTS = (
    ("power", "Power per node (signed readings, + import / - export)", "W"),
    ("prices", "Clearing price and volume per slot", "msat/kWh"),
    ("channels", "Channel balances over the day (local side)", "msat"),
    ("imbalances", "Imbalance per node and settlement period", "Wh"),
)


def write(directory: Path, result: dict[str, Any], lines: list[str] | None = None) -> Path:
    """Write report.json, the PNGs and report.html into `directory`; return the HTML's path.
    `lines`: the summary the terminal printed (day start, service, money), atop the page."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    pngs = {
        name: _plot(directory / f"{name}.png", name, title, unit, result)
        for name, title, unit in PLOTS
    }
    page = directory / "report.html"
    page.write_text(_html(result, pngs, lines or []))
    return page


def failed_invariants(result: dict[str, Any]) -> list[str]:
    return sorted(n for n, v in result.get("invariants", {}).items() if not v.get("holds"))


def _hours(t: float, t0: float) -> float:
    return (t - t0) / 3600


def _plot(path: Path, name: str, title: str, unit: str, result: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.get("span", {}).get("start", 0)
    fig, ax = plt.subplots(figsize=(10, 4))
    drawn = False
    if name == "power":
        for node, pts in sorted(result.get("power", {}).items()):
            if pts:
                ax.step(
                    [_hours(t, t0) for t, _ in pts],
                    [w for _, w in pts],
                    where="post",
                    label=node,
                    linewidth=1,
                )
                drawn = True
    elif name == "prices":
        slots = result.get("slots", [])
        priced = [s for s in slots if s.get("price_msat_per_kwh") is not None]
        if slots:
            ax2 = ax.twinx()
            ax2.bar(
                [_hours(s["start"], t0) for s in slots],
                [s.get("volume_wh", 0) for s in slots],
                width=0.22,
                align="edge",
                alpha=0.3,
                color="tab:green",
                label="volume (Wh)",
            )
            ax2.set_ylabel("volume (Wh)")
            drawn = True
        if priced:
            ax.step(
                [_hours(s["start"], t0) for s in priced],
                [s["price_msat_per_kwh"] for s in priced],
                where="post",
                color="tab:blue",
                label="clearing price",
            )
    elif name == "channels":
        for label, pts in sorted(result.get("channels", {}).items()):
            if pts:
                ax.step(
                    [_hours(t, t0) for t, _ in pts],
                    [m for _, m in pts],
                    where="post",
                    label=label,
                    linewidth=1,
                )
                drawn = True
    elif name == "imbalances":
        series = sorted(result.get("imbalances", {}).items())
        width = 0.25 / max(1, len(series))
        for i, (node, pts) in enumerate(series):
            if pts:
                ax.bar(
                    [_hours(t, t0) + i * width for t, _ in pts],
                    [wh for _, wh in pts],
                    width=width,
                    align="edge",
                    label=node,
                )
                drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_title(title)
    ax.set_xlabel("hours since the start of the run")
    ax.set_ylabel(unit)
    if drawn and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p class='empty'>nothing recorded</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _columns(rows: list[dict[str, Any]], first: list[str]) -> list[str]:
    rest = sorted({k for r in rows for k in r} - set(first))
    return first + rest


def _html(result: dict[str, Any], pngs: dict[str, Path], lines: list[str]) -> str:
    nodes = [{"node": n, **v} for n, v in sorted(result.get("nodes", {}).items())]
    inv = [
        {
            "invariant": n,
            "holds": v.get("holds"),
            "figures": ", ".join(f"{k}={_cell(x)}" for k, x in sorted(v.items()) if k != "holds"),
        }
        for n, v in sorted(result.get("invariants", {}).items())
    ]
    settlement = result.get("settlement", [])
    failed = failed_invariants(result)
    verdict = (
        "<p class='ok'>every invariant holds</p>"
        if not failed
        else f"<p class='bad'>failed: {html.escape(', '.join(failed))}</p>"
    )
    imgs = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'></figure>"
        for name, path in pngs.items()
    )
    scenario = html.escape(str(result.get("scenario", "?")))
    said = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Seamless Grid sim — {scenario}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
.ok {{ color: #070; font-weight: bold; }} .bad {{ color: #b00; font-weight: bold; }}
.empty {{ color: #888; }}
</style></head><body>
<h1>Seamless Grid sim — scenario “{scenario}”</h1>
{verdict}
{said}
<h2>Invariants</h2>{_table(inv, ["invariant", "holds", "figures"])}
<h2>Nodes</h2>{_table(nodes, _columns(nodes, ["node"]))}
<h2>Pictures</h2>{imgs}
<h2>Settlement</h2>{_table(settlement, _columns(settlement, ["node", "period"]))}
</body></html>
"""
