from hil_tests.bench import bench_mqtt


def test_mqtt_bench_runs_and_reports_figures(capsys):
    r = bench_mqtt.main(["--n", "2"])
    out = capsys.readouterr().out
    assert "fuel per publish" in out and "signed ack verification" in out
    assert r["publish_fuel_median"] > 0 and 0 < r["heap_peak_bytes"] < 110 * 1024
