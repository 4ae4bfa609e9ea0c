"""Where a prepaid meter's paid credit is at the end of a run (hil_tests/rig/sim/credit_timing.py)."""

from __future__ import annotations

from hil_tests.rig.sim.credit_timing import credit_figures

T0, T1 = 1_000_000.0, 1_086_400.0


def _row(status: str, wh: int, start: float, accepted_at: float, token_id: int | None = None):
    return {"status": status, "wh": wh, "window_start": start, "updated_at": accepted_at,
            "token_id": token_id}  # fmt: skip


def test_credit_taken_and_not_drawn_is_the_meters_balance_and_late_credit_is_named() -> None:
    rows = [
        _row("accepted", 150, T0 + 900, T0 + 600, 1),  # before its window: on time
        _row("accepted", 2690, T0 + 1800, T0 + 1800 + 2400, 2),  # 40 min into its window
        _row("issued", 2759, T0 + 2700, T0 + 2700, 3),  # the meter took it (console), no ack yet
        _row("issued", 145, T1 + 900, T1, 4),  # after the day, not taken: on its way
        _row("paid", 145, T1 + 1800, T1),  # paid, its token not issued yet: on its way
        _row("failed", 1000, T0, T0),  # never paid: nowhere
    ]
    got = credit_figures(rows, took={1, 2, 3}, drew_wh=4080, t0=T0, t1=T1)
    assert got == {
        "credit_left_wh": 150 + 2690 + 2759 - 4080,
        "credit_pending_wh": 290,
        "credit_late_wh": 2690,
        "credit_late_max_s": 2400,
    }


def test_the_service_line_says_where_the_unspent_credit_is() -> None:
    from hil_tests.rig.sim.cli import service_line

    service = {"prepaid": 5, "bought_credit": 5, "got_delivery": 5, "never_short": 1,
               "credit_bought_wh": 71280, "delivered_wh": 52975, "unserved_wh": 12692,
               "credit_left_wh": 18305, "credit_pending_wh": 2900, "credit_late_wh": 60000,
               "credit_late_max_s": 5587}  # fmt: skip
    line = service_line({"service": service})
    assert "18.3 kWh left on the meters" in line
    assert "2.9 kWh paid and on its way" in line
    assert "60.0 kWh reached its meter after its window began (up to 93 min late)" in line


def test_the_summary_table_shows_a_prepaid_meters_balance_left() -> None:
    from rich.console import Console

    from hil_tests.rig.sim.cli import summary

    base = {"import_wh": 4080, "export_wh": 0, "paid_msat": 4_352_700, "earned_msat": 0,
            "unserved_wh": 9933}  # fmt: skip
    nodes = {"ev-1": {**base, "kind": "ev", "credit_left_wh": 10429},
             "pod": {**base, "kind": "pod"}}  # fmt: skip
    console = Console(width=120, record=True)
    console.print(summary({"scenario": "normal", "nodes": nodes}))
    lines = console.export_text().splitlines()
    assert "credit left" in lines[1]
    assert next(x for x in lines if x.startswith("ev-1")).rstrip().endswith("10.4")
    assert next(x for x in lines if x.startswith("pod")).rstrip().endswith("9.9")
