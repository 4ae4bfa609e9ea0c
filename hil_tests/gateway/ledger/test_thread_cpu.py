"""Thread CPU by role (GET /v1/stats: where the time goes)."""

import threading

from gateway.ledger import thread_cpu


def test_numbered_threads_share_their_role():
    assert thread_cpu.role("ledger-http-worker-12") == "ledger-http-worker"
    assert thread_cpu.role("ledger-producer") == "ledger-producer"
    assert thread_cpu.role("Thread-3 (serve_forever)") == "Thread"


def test_a_busy_threads_cpu_is_counted_under_its_role_while_it_lives():
    done = [threading.Event(), threading.Event()]
    stop = threading.Event()

    def busy(i: int) -> None:
        total = 0
        while total < 2_000_000:  # a fixed amount of work, then wait to be sampled
            total += 1
        done[i].set()
        stop.wait(30)

    threads = [threading.Thread(target=busy, args=(i,), name=f"bench-busy-{i}") for i in range(2)]
    for t in threads:
        t.start()
    try:
        assert all(d.wait(30) for d in done)
        figures = thread_cpu.by_role()
        assert figures["thread_cpu_s.bench-busy"] > 0
        assert "thread_cpu_s.bench-busy-0" not in figures
    finally:
        stop.set()
        for t in threads:
            t.join()
