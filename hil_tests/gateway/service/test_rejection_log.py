import logging

from gateway.service.rejection_log import RejectionLog


def test_a_flood_is_logged_in_bursts_and_the_rest_summarised(caplog):
    now = [0.0]
    rl = RejectionLog(logging.getLogger("t"), burst=3, window_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        logged = [rl.log("bad_signature", "ab", i, "x") for i in range(10)]
        assert logged == [True] * 3 + [False] * 7
        assert rl.log("malformed", "ab", None, "y")  # other reasons have their own budget
        now[0] = 10.0
        assert rl.log("bad_signature", "ab", 10, "x")
    assert "(+7 more bad_signature rejections not logged)" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 5
