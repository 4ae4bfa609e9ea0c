"""The short variant of bench_fuzz: a few hundred mutated inputs per parser, 0 crashes and 0
state changes on refused inputs (the benchmark runs >= 1e5 per parser)."""

from hil_tests.bench.bench_fuzz import TARGETS, run_all


def test_every_parser_survives_a_short_fuzz_run_without_state_changes():
    results = run_all(list(TARGETS), cases=300, seed=5)
    assert [r.name for r in results] == list(TARGETS)
    for r in results:
        assert r.cases == 300
        assert r.crashes == 0, f"{r.name}: {r.first_crash}"
        assert r.state_changes == 0, r.name
        assert r.refused > 100, r.name  # the mutations mostly are garbage: the parser refused
