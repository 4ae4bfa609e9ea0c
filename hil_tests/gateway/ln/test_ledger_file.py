"""`FileLedger` from worker threads: the node's watch and gossip read the ledger off the event
loop (`asyncio.to_thread`); its SQLite connection was bound to the thread that opened it, so
every such read raised `sqlite3.ProgrammingError` (gossip never forgot a closed channel on a
file ledger, and logged a traceback each pass)."""

from __future__ import annotations

import threading

from gateway.ln.node.ledger_file import FileLedger


def test_calls_from_other_threads_run_and_none_is_lost(tmp_path):
    led = FileLedger(tmp_path / "ledger.sqlite")
    accounts = [bytes([i]) * 33 for i in range(4)]
    errors: list[BaseException] = []

    def work(account: bytes) -> None:
        try:
            for _ in range(25):
                led.deposit(account, 10)
                assert led.height() >= 0
                assert led.channel(bytes(32)) is None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a,)) for a in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [led.balance(a) for a in accounts] == [250] * 4
    assert FileLedger(tmp_path / "ledger.sqlite").balance(accounts[0]) == 250  # on disk
