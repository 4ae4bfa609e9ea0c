"""`sgrid invoice create|decode` run as the real CLI (subprocess), as an operator would."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.ln.codec import bolt11
from gateway.ln.node import keys

REPO = Path(__file__).resolve().parents[2]
NOW = 1_767_220_000


def sgrid(*args: str, env_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from gateway.cli import main; main()", *args]
    env = None
    if env_dir is not None:
        import os

        env = {**os.environ, "SGRID_DATA_DIR": str(env_dir)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60, env=env)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    keys.write_seed(tmp_path / keys.SEED_FILE, bytes.fromhex("07" * 32))
    return tmp_path


def test_create_then_decode_an_energy_receipt(data_dir: Path) -> None:
    node_id = keys.NodeKeys(bytes.fromhex("07" * 32)).node_id
    created = sgrid(
        "invoice",
        "create",
        "--amount-msat",
        "150000",
        "--node",
        "pv-07",
        "--start",
        str(NOW + 3600),
        "--end",
        str(NOW + 7200),
        "--kwh",
        "1.5",
        "--now",
        str(NOW),
        env_dir=data_dir,
    )
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert out["invoice"].startswith("lnbcrt1500n1")
    assert hashlib.sha256(bytes.fromhex(out["preimage"])).hexdigest() == out["payment_hash"]
    inv = bolt11.decode(out["invoice"])
    assert inv.payee == node_id and inv.expires_at == NOW + 3600

    decoded = sgrid("invoice", "decode", out["invoice"])
    assert decoded.returncode == 0, decoded.stderr
    info = json.loads(decoded.stdout)
    assert info["payee"] == node_id.hex()
    assert info["energy"]["kwh"] == 1.5 and info["energy"]["node"] == "pv-07"


def test_long_profile_goes_by_hash_and_decodes_with_memo_file(
    data_dir: Path, tmp_path: Path
) -> None:
    profile = ",".join(["1234.5678"] * 96)
    created = sgrid(
        "invoice",
        "create",
        "--data-dir",
        str(data_dir),
        "--amount-msat",
        "42",
        "--node",
        "pod",
        "--start",
        str(NOW + 60),
        "--end",
        str(NOW + 60 + 96 * 900),
        "--kw",
        profile,
        "--step-s",
        "900",
        "--now",
        str(NOW),
    )
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert out["memo_by_hash"] is True
    memo = tmp_path / "memo.json"
    memo.write_text(out["memo"])
    decoded = json.loads(sgrid("invoice", "decode", out["invoice"], "--memo", str(memo)).stdout)
    assert decoded["energy"]["step_s"] == 900 and len(decoded["energy"]["kw"]) == 96
    memo.write_text(out["memo"].replace("1234.5678", "1.0", 1))
    tampered = sgrid("invoice", "decode", out["invoice"], "--memo", str(memo))
    assert tampered.returncode != 0 and "description hash" in tampered.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kwh", "1", "--start", str(NOW - 5)], "already started"),
        (["--kwh", "1", "--kw", "1", "--step-s", "3600"], "exactly one"),
        (["--kwh", "1", "--preimage", "zz"], "hex"),
    ],
)
def test_create_refuses_bad_input_with_a_clear_message(
    data_dir: Path, args: list[str], message: str
) -> None:
    base = {"--amount-msat": "1", "--node": "n", "--start": str(NOW + 10), "--end": str(NOW + 3610)}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    flat = [x for kv in base.items() for x in kv]
    res = sgrid("invoice", "create", "--data-dir", str(data_dir), "--now", str(NOW), *flat)
    assert res.returncode != 0 and message in res.stderr
    assert "Traceback" not in res.stderr


def test_decode_refuses_a_corrupted_invoice() -> None:
    res = sgrid("invoice", "decode", "lnbcrt1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyq")
    assert res.returncode != 0 and "invalid invoice" in res.stderr
    assert "Traceback" not in res.stderr


def test_create_without_a_node_key_explains_what_is_missing(tmp_path: Path) -> None:
    res = sgrid(
        "invoice",
        "create",
        "--data-dir",
        str(tmp_path),
        "--amount-msat",
        "1",
        "--node",
        "n",
        "--start",
        str(NOW + 10),
        "--end",
        str(NOW + 20),
        "--kwh",
        "1",
        "--now",
        str(NOW),
    )
    assert res.returncode != 0 and "no node seed" in res.stderr
