from hil_tests.bench import bench_crypto


def test_crypto_bench_runs_and_reports_figures(capsys):
    figures = bench_crypto.main(["--n", "1"])
    out = capsys.readouterr().out
    assert "sign one reading" in out and "max fuel of one step()" in out
    assert "signatures equal coincurve's: True" in out
    assert figures["sign_fuel"] > 0 and figures["verify_fuel"] > figures["sign_fuel"]
    assert 0 < figures["max_step_fuel"] < figures["sign_fuel"]
    assert "verify, issuer key table" in out and "valid: True" in out
    # the key's table replaces the variable-base half: cheaper than the path without it
    assert 0 < figures["verify_table_fuel"] < figures["verify_parsed_fuel"]
    assert 0 < figures["sign_heap_own"] < figures["sign_heap"] <= figures["sign_heap_peak"]
