# A/B firmware images on the flash and the choice of the one that boots (docs/ota.md).
#
#   ota/state.json   {"active": "factory"|"a"|"b", "trial": ""|"a"|"b", "tries": n, "note": ""}
#   ota/a/lib/...    an image installed by ota_agent (the factory image is the flashed one)
#
# main.py asks load_app() for meter_app: from the trial image if one waits for its first good
# run, else from the active one. Every boot of a trial image counts; one that does not confirm
# (ota_agent: MQTT up and a message acknowledged) within MAX_TRIAL_BOOTS boots, or cannot even be
# imported, is dropped and the active image boots again. State changes are written to a temp
# file and renamed, so a power cut leaves the old state or the new one.
import json
import os
import sys

from micropython import const

STATE = "ota/state.json"
MAX_TRIAL_BOOTS = const(3)
booted = "factory"  # the image this boot runs
on_trial = False  # it still has to prove itself


def _dir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


def read_state():
    try:
        with open(STATE) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = {}
    if not isinstance(st, dict):
        st = {}
    for key, default in (("active", "factory"), ("trial", ""), ("tries", 0), ("note", "")):
        st.setdefault(key, default)
    return st


def write_state(st):
    _dir("ota")
    with open(STATE + ".tmp", "w") as f:
        json.dump(st, f)
        f.flush()
    os.rename(STATE + ".tmp", STATE)


def slot_lib(slot):
    return os.getcwd().rstrip("/") + "/ota/" + slot + "/lib"


def _choose():
    global booted, on_trial
    st = read_state()
    if st["trial"]:
        st["tries"] += 1
        if st["tries"] > MAX_TRIAL_BOOTS:
            st["note"] = "rolled back: image %s did not come up in %d boots" % (
                st["trial"],
                MAX_TRIAL_BOOTS,
            )
            print("ota: " + st["note"])
            st["trial"], st["tries"] = "", 0
        write_state(st)
    booted = st["trial"] or st["active"]
    on_trial = bool(st["trial"])
    return st


def load_app():
    """The meter_app module of the image that boots this time."""
    st = _choose()
    if booted != "factory":
        sys.path.insert(0, slot_lib(booted))
        try:
            return __import__("meter_app")
        except Exception as exc:  # noqa: BLE001 - a broken image must not brick the meter
            sys.print_exception(exc)
            print("ota: image %s does not start" % booted)
            if on_trial:
                st["tries"] = MAX_TRIAL_BOOTS  # the next boot rolls back
            else:
                st["active"], st["note"] = "factory", "image %s broken: factory image" % booted
            write_state(st)
            import machine

            machine.reset()
    return __import__("meter_app")


def confirm(version):
    """The trial image came up: it becomes the active one."""
    global on_trial
    st = read_state()
    if st["trial"] == booted:
        st["active"], st["trial"], st["tries"] = booted, "", 0
        st["note"] = "installed %s" % version
        write_state(st)
    on_trial = False


def take_note():
    """What the boot selection has to report once (a rollback, an install), or ""."""
    st = read_state()
    note = st["note"]
    if note:
        st["note"] = ""
        write_state(st)
    return note
