import pytest

from hil_tests.bench import bench_site
from hil_tests.rig.broker import mosquitto_available


@pytest.mark.needs("mosquitto", mosquitto_available())
def test_site_bench_runs_and_reports(capsys):
    r = bench_site.main(["--tokens", "1"])
    assert "token published -> relay closed" in capsys.readouterr().out
    assert r["close_max_s"] > 0 and r["open_max_s"] > 0
