# Meter configuration: config.json on flash, validated at boot.
#
# Every key has a safe default. A wrong value is reported on the console naming the key and the
# problem, and the default is used instead, so a typo never stops a meter from metering.
import json

CONFIG_FILE = "config.json"
_HEX = "0123456789abcdef"

# key: (default, kind, low, high). kind: "str", "int", "bool", "pubkey" (66 hex chars or "").
SCHEMA = {
    "site": ("site", "str", 1, 32),  # no MQTT wildcards or separators: see _problem
    "wifi_ssid": ("", "str", 0, 32),
    "wifi_password": ("", "str", 0, 64),
    "broker_host": ("127.0.0.1", "str", 1, 64),
    "broker_port": (1883, "int", 1, 65535),
    "broker_user": ("", "str", 0, 64),
    "broker_password": ("", "str", 0, 64),
    "broker_tls_ca": ("", "str", 0, 64),  # CA file on flash: TLS to the broker ("" = plain TCP)
    "mqtt_timeout_s": (10, "int", 1, 86400),  # every wait for the broker (CONNACK, PUBACK, ...)
    # the journal republished when no ack came for ack_timeout_s; a PINGREQ after
    # mqtt_keepalive_s idle (an emulated board at high speed counts both in virtual seconds)
    "mqtt_keepalive_s": (60, "int", 10, 65535),
    "ack_timeout_s": (60, "int", 10, 86400),
    "topic_prefix": ("sg", "str", 1, 16),
    "issuer_pubkey": ("", "pubkey", 0, 0),
    "release_pubkey": ("", "pubkey", 0, 0),  # signs firmware updates ("" = refuse every one)
    "ota_trial_s": (600, "int", 30, 86400),  # a new image must reach the broker within this
    "interval_s": (900, "int", 60, 3600),
    "checkpoint_s": (60, "int", 10, 3600),
    "journal_capacity": (800, "int", 16, 4096),
    "meter_source": ("s0", "str", 2, 6),
    "s0_imp_per_kwh": (1000, "int", 1, 100000),
    "modbus_unit": (1, "int", 1, 247),
    "critical_load": (False, "bool", 0, 0),
    "low_credit_wh": (100, "int", 0, 1000000),
    "emergency_credit_wh": (0, "int", 0, 100000),
    "credit_reserve_wh": (20, "int", 4, 1000),  # consumption committed to flash ahead of use
    "max_power_w": (0, "int", 0, 100000),
    "max_power_hold_s": (10, "int", 1, 3600),
    "min_switch_s": (5, "int", 0, 3600),
    "overload_retry_s": (60, "int", 1, 86400),
}
_SOURCES = ("s0", "bl0942")


def _problem(value, kind, low, high):
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not low <= value <= high:
            return "must be between %d and %d" % (low, high)
        return None
    if not isinstance(value, str):
        return "must be a string"
    if kind == "pubkey":
        if value and (
            len(value) != 66 or value[:2] not in ("02", "03") or any(c not in _HEX for c in value)
        ):
            return "must be a compressed secp256k1 public key: 66 lowercase hex characters"
        return None
    if not low <= len(value) <= high:
        return "must be %d to %d characters long" % (low, high)
    return None


def _topic_safe(value):
    for ch in "/+#":
        if ch in value:
            return False
    return True


def validate(raw, log=print):
    """Return a complete config dict from `raw` (a dict); log one line per problem."""
    cfg = {}
    errors = 0
    if not isinstance(raw, dict):
        log("config error: the file must hold a JSON object; using defaults")
        raw = {}
        errors += 1
    for key, spec in SCHEMA.items():
        default, kind, low, high = spec
        if key not in raw:
            cfg[key] = default
            continue
        problem = _problem(raw[key], kind, low, high)
        if problem is None and key == "meter_source" and raw[key] not in _SOURCES:
            problem = "must be one of: " + ", ".join(_SOURCES)
        if problem is None and key in ("site", "topic_prefix") and not _topic_safe(raw[key]):
            problem = "must not contain '/', '+' or '#' (it is part of MQTT topics)"
        if problem is None:
            cfg[key] = raw[key]
        else:
            log("config error: key '%s' %s; using the default %r" % (key, problem, default))
            cfg[key] = default
            errors += 1
    for key in raw if isinstance(raw, dict) else ():
        if key not in SCHEMA:
            log("config warning: unknown key '%s' ignored" % key)
    cfg["_errors"] = errors
    return cfg


def load(path=CONFIG_FILE, log=print):
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        log("config: no %s on flash; using defaults" % path)
        raw = {}
    except ValueError as exc:
        log("config error: %s is not valid JSON (%s); using defaults" % (path, exc))
        raw = {}
    return validate(raw, log)


def save_key(key, value, path=CONFIG_FILE):
    """Change one key in config.json on flash (temp file + rename: all or nothing)."""
    import os

    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    raw[key] = value
    with open(path + ".tmp", "w") as f:
        json.dump(raw, f)
        f.flush()
    os.rename(path + ".tmp", path)
