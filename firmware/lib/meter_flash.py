# What the meter application does with flash at boot, besides opening the journal, registers and
# credit state: two small files of its own, and the registers' floor.
#   boots.txt  how many times the meter booted (printed in the banner and in status)
#   last.rec   a copy of the last signed record: the totals' floor survives a lost checkpoint
#              even when the gateway has acked (and the journal dropped) every record
import os

from sgcore import reading as rd

_BOOTS_FILE = "boots.txt"
_LAST_RECORD = "last.rec"


def _replace(name, data, mode):
    with open(name + ".tmp", mode) as f:
        f.write(data)
        f.flush()
    os.rename(name + ".tmp", name)


def keep_last_record(record):
    _replace(_LAST_RECORD, record, "wb")


def read_last_record():
    try:
        with open(_LAST_RECORD, "rb") as f:
            return f.read()
    except OSError:
        return None


def count_boot():
    try:
        with open(_BOOTS_FILE) as f:
            boots = int(f.read() or "0")
    except (OSError, ValueError):
        boots = 0
    _replace(_BOOTS_FILE, str(boots + 1), "w")
    return boots + 1


def floor_registers(regs, journal):
    """A lost checkpoint must not take the totals below a signed reading, and a close whose
    reading was journaled is not closed again: the journal's last record, or (every record
    acked and dropped) the copy kept in last.rec."""
    last = journal.last_record() or read_last_record()
    if last is None:
        return
    try:
        r = rd.decode(last)[0]
    except ValueError:
        print("registers: ignoring a damaged last.rec")
        return
    regs.floor(r.import_wh, r.export_wh, r.end if r.kind == rd.KIND_READING else 0)


def fed(board, gen):
    """A slow boot generator (a first-boot key) with the watchdog fed between its slices."""
    while True:
        try:
            part = next(gen)
        except StopIteration as done:
            return done.value
        board.watchdog_feed()
        yield part
