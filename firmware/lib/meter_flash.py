# Two small files the meter application keeps besides the journal, registers and credit state:
#   boots.txt  how many times the meter booted (printed in the banner and in status)
#   last.rec   a copy of the last signed record: the totals' floor survives a lost checkpoint
#              even when the gateway has acked (and the journal dropped) every record
import os

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
