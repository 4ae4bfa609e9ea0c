"""Seeded mutational fuzzing of every parser that takes input from outside (issue 16).

    uv run python -m hil_tests.bench.bench_fuzz --cases 100000 [--only modbus,ledger] [--seed 1]

Each target starts from a corpus of valid inputs and feeds `--cases` mutations of them (bit and
byte flips, inserts, deletions, truncations, splices, interesting values, random bytes; for JSON
bodies also structural mutations of the parsed value: replaced, deleted or added members, deep
nesting, huge numbers, wrong types) to the real parser:

| target   | parser under test (real code)                                 | state that must not change |
|----------|---------------------------------------------------------------|----------------------------|
| modbus   | the meter's Modbus RTU slave (firmware, CPython): frames, CRC fixed up half the time | registers, unit id |
| mqtt     | the meter's MQTT packet reader and decoders (firmware)        | (pure)                     |
| reading  | the gateway's ingest of a signed reading (decode, key, sig, chain) into SQLite | rows, chain head |
| token    | the credit token decoder (sgcore) and its issuer signature    | (pure)                     |
| invoice  | BOLT-11 decode of an energy receipt                           | (pure)                     |
| peer     | BOLT-1 message decode, channel messages, updates, routing payloads | (pure)                |
| control  | a channel node's control API over HTTP (token, headers, body, routes) | channels, payments, ledger, unless answered 200 |
| ledger   | the ledger node's HTTP API, POST /v1/tx bodies                | chain tip and state        |

A crash is any exception other than the parser's documented error, or an HTTP 5xx / no answer.
Exit status 1 if any target has a crash or a state change. Prints cases, crashes, state changes,
refusals and wall time per target.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import json
import random
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hil_tests import REPO_ROOT

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20)


# --- mutation ----------------------------------------------------------------------------------


def mutate_bytes(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        op = rng.randrange(10)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            i = rng.randrange(n + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i : i + rng.randrange(1, 17)]
        elif op == 4 and n:
            del b[rng.randrange(n) :]
        elif op == 5 and n:
            i = rng.randrange(n)
            b[i:i] = b[i : i + rng.randrange(1, 33)] * rng.randrange(1, 4)
        elif op == 6 and n:
            b[rng.randrange(n)] = rng.choice(INTERESTING)
        elif op == 7:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            b = b[: rng.randrange(n + 1)] + bytearray(other[cut:])
        elif op == 8 and n >= 4:
            i = rng.randrange(n - 3)
            b[i : i + 4] = struct.pack(">I", rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 2**31)))
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 33)))
    return bytes(b)


_WEIRD: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**64,
    -(2**63) - 1,
    10**400,
    1.5,
    float("nan"),
    "",
    "x" * 5000,
    "\udcff",
    "00" * 32,
    [],
    {},
    [1],
    {"": None},
)


def _weird(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        depth = rng.choice((40, 300, 2000))
        value: Any = 1
        for _ in range(depth):
            value = [value] if rng.random() < 0.5 else {"k": value}
        return value
    return rng.choice(_WEIRD)


def mutate_json(value: Any, rng: random.Random) -> Any:
    """A structural mutation: one member somewhere replaced, deleted, or added."""
    if not isinstance(value, dict | list) or not value or rng.random() < 0.15:
        return _weird(rng)
    out: Any = dict(value) if isinstance(value, dict) else list(value)
    keys = list(out) if isinstance(out, dict) else list(range(len(out)))
    k = rng.choice(keys)
    op = rng.randrange(4)
    if op == 0:
        out[k] = mutate_json(out[k], rng)
    elif op == 1:
        del out[k]
    elif op == 2 and isinstance(out, dict):
        out[rng.choice(("extra", "kind", "sigs", "body", "x" * 70))] = _weird(rng)
    else:
        out[k] = _weird(rng)
    return out


def json_case(corpus: list[bytes], rng: random.Random) -> bytes:
    seed = rng.choice(corpus)
    if rng.random() < 0.5:
        return mutate_bytes(seed, rng, corpus)
    try:
        return json.dumps(mutate_json(json.loads(seed), rng)).encode()
    except (ValueError, RecursionError):
        return mutate_bytes(seed, rng, corpus)


# --- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    corpus: list[bytes]
    run: Callable[[bytes], bool]  # True: accepted, False: refused; raises on a crash
    state: Callable[[], Any] = lambda: None
    json_bodies: bool = False
    close: Callable[[], None] = lambda: None
    state_every: int = 1  # check the state after every n-th case (and at the end)
    # run() returns True when a change of state is allowed (an authorized, valid request)


@dataclass
class Result:
    name: str
    cases: int = 0
    crashes: int = 0
    state_changes: int = 0
    refused: int = 0
    seconds: float = 0.0
    first_crash: str = ""
    samples: list[bytes] = field(default_factory=list)


def _firmware(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIRMWARE_LIB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def modbus_target() -> Target:
    from hil_tests.bench.bench_modbus import GUEST_RIG

    crc, rtu = _firmware("modbus_crc"), _firmware("modbus_rtu")
    rig: dict[str, Any] = {}
    exec(GUEST_RIG, rig)
    values = {"import_wh": 123456789, "export_wh": 4567, "power_w": -1500, "voltage_dv": 2301,
              "relay": 1, "credit_wh": 25000, "seq": 4242, "current_ma": 6520}  # fmt: skip

    def refuse_all(name: str, value: int, *commit: Any) -> int:
        return 3  # every write refused (checked, then committed): a refused write changes nothing

    uart, clock = rig["MemUart"](b"", 8), rig["Clock"]()
    slave = rtu.ModbusSlave(uart, rig["Pin"](), clock, values, unit_id=1, on_write=refuse_all)
    uart.keep = False

    def frame(body: bytes) -> bytes:
        c = crc.crc16(body, len(body))
        return body + bytes([c & 0xFF, c >> 8])

    corpus = [
        frame(bytes.fromhex(h))
        for h in (
            "01030000000a",
            "0104000a0004",
            "010600010005",
            "01100000000204000500 00".replace(" ", ""),
            "0110000000010200 05".replace(" ", ""),
            "0003000000 01".replace(" ", ""),
            "0108000000 00".replace(" ", ""),
        )
    ]
    rng = random.Random(7)

    def run(data: bytes) -> bool:
        if len(data) > 2 and rng.random() < 0.5:
            data = frame(data[:-2])  # a valid CRC: reach the PDU parser
        uart.feed(data)
        for _ in range(4000):
            if uart.pos >= len(uart.data) and slave._n == 0:
                break
            if not slave.poll():
                clock.t += 1
        else:
            raise AssertionError("the slave did not consume its input")
        clock.t += 10
        slave.poll()
        return False

    def state() -> Any:
        return (slave.unit_id, slave._new_unit, tuple(sorted(values.items())))

    return Target("modbus", corpus, run, state)


def mqtt_target() -> Target:
    mp, reader_mod = _firmware("mqtt_packet"), _firmware("mqtt_reader")

    class Stream:
        def __init__(self) -> None:
            self.data, self.pos = b"", 0

        def readinto(self, buf: Any, n: int) -> int | None:
            left = len(self.data) - self.pos
            if left <= 0:
                return None
            k = min(n, left, 7)
            buf[:k] = self.data[self.pos : self.pos + k]
            self.pos += k
            return k

    reader, stream = reader_mod.PacketReader(512), Stream()
    topic = b"sg/site/00112233445566778899aabbccddeeff/token"
    pub1 = bytes([0x32]) + bytes([2 + len(topic) + 2 + 20]) + struct.pack(">H", len(topic))
    corpus = [
        b"\x20\x02\x00\x00",
        b"\x40\x02\x00\x07",
        b"\x90\x03\x00\x01\x01",
        b"\xd0\x00",
        b"\xb0\x02\x00\x09",
        pub1 + topic + b"\x00\x05" + bytes(range(20)),
        b"\x30" + bytes([2 + len(topic) + 5]) + struct.pack(">H", len(topic)) + topic + b"hello",
    ]

    def run(data: bytes) -> bool:
        stream.data, stream.pos = data, 0
        try:
            for _ in range(1000):
                if not reader.read(stream, 0):
                    break
                first, body, n = reader.first, reader.buf, reader.n
                ptype = first & 0xF0
                if ptype == mp.PUBLISH:
                    mp.decode_publish(first, body, n)
                elif first == mp.CONNACK:
                    mp.decode_connack(body, n)
                elif first in (mp.PUBACK, mp.SUBACK, mp.UNSUBACK):
                    mp.decode_pid(body, n)
        except mp.MqttError:
            reader.reset()  # the meter drops the connection and starts over
            return False
        reader.reset()
        return True

    return Target("mqtt", corpus, run)


def reading_target(tmp: Path) -> Target:
    from gateway.ingest.pipeline import Incoming, Ingestor
    from gateway.ingest.store import ReadingStore
    from hil_tests.gateway.soft_meter import SoftMeter

    meter = SoftMeter(secret=b"\x07" * 32)
    good = [meter.next_record() for _ in range(4)]
    store = ReadingStore(tmp / "readings.sqlite3")
    store.enroll(meter.pubkey)
    ing = Ingestor(store)
    ing.ingest([Incoming(meter.hex, good[0], 0.0)])

    def run(data: bytes) -> bool:
        out = ing.ingest([Incoming(meter.hex, data, 0.0)])
        return bool(out.stored)

    def state() -> Any:
        return store.count(), ing.head(meter.meter_id)

    return Target("reading", good[1:], run, state, close=store.close)


def token_target() -> Target:
    import coincurve

    from gateway.crypto import sign_digest
    from sgcore import token as tk

    issuer = coincurve.PrivateKey(b"\x09" * 32)
    pub = issuer.public_key.format(compressed=True)
    kid = tk.key_id(pub)
    mid = bytes(range(16))
    tokens = [
        tk.Token(tk.KIND_ENERGY, mid, 7, 1_800_000_000, kid, amount_wh=500),
        tk.Token(
            tk.KIND_WINDOW,
            mid,
            8,
            1_800_000_000,
            kid,
            window_start=1,
            window_end=9,
            power_cap_w=2000,
        ),  # fmt: skip
        tk.Token(tk.KIND_KEY_CHANGE, mid, 9, 1_800_000_000, kid, new_issuer_key=pub),
    ]
    corpus = []
    for t in tokens:
        body = tk.encode_body(t)
        corpus.append(body + sign_digest(issuer, tk.digest(body)))

    def run(data: bytes) -> bool:
        try:
            t, body, sig = tk.decode(data)
        except tk.TokenFormatError:
            return False
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
        ok = coincurve.PublicKey(pub).verify(der, tk.digest(body), hasher=None)
        return bool(ok and t.issuer_key_id == kid)

    return Target("token", corpus, run)


def invoice_target() -> Target:
    from gateway.errors import GatewayError
    from gateway.ln.codec import bolt11, receipt

    key = b"\x11" * 32
    memo = receipt.EnergyMemo("pv-07", 1_800_000_000, 1_800_003_600, kwh=1.5)
    corpus = [
        receipt.create_receipt(memo, amt, bytes([i]) * 32, key, 1_799_990_000).invoice.encode()
        for i, amt in enumerate((1, 150_000, 10**11))
    ]

    def run(data: bytes) -> bool:
        try:
            bolt11.decode(data.decode("latin-1"))
        except (GatewayError, ValueError):
            return False
        return True

    return Target("invoice", corpus, run)


def peer_target() -> Target:
    from gateway.errors import GatewayError
    from gateway.ln.channel import messages as m
    from gateway.ln.channel import messages_wire
    from gateway.ln.channel.htlc import AddHtlc, FulfillHtlc, decode_updates, encode_updates
    from gateway.ln.codec.wire import TABLE
    from gateway.ln.node.router import decode_onion

    cid = b"\x22" * 32
    updates = encode_updates(
        (AddHtlc(0, 3, 5000, b"\x01" * 32, 700, b'{"a":5000,"e":700}'), FulfillHtlc(1, 2, b"\x02" * 32))
    )  # fmt: skip
    msgs: list[Any] = [
        m.UpdateBatch(cid, 5, updates, b"\x03" * 64, b"\x04" * 64),
        m.AckBatch(cid, 5, b"\x03" * 64, b"\x04" * 64, b"\x05" * 32, b"\x06" * 32),
        m.Revoke(cid, 4, b"\x05" * 32, b"\x06" * 32),
        m.Reestablish(cid, 5, 3),
        m.Shutdown(cid),
    ]
    corpus = [messages_wire.to_wire(x) for x in msgs]
    corpus.append(TABLE.encode("init", globalfeatures=b"", features=b"\x01"))

    def run(data: bytes) -> bool:
        try:
            msg = messages_wire.from_wire(TABLE.decode(data))
            if isinstance(msg, m.UpdateBatch):
                for u in decode_updates(msg.updates):
                    if isinstance(u, AddHtlc):
                        decode_onion(u.onion)
        except GatewayError:
            return False
        return True

    return Target("peer", corpus, run)


def control_target(tmp: Path) -> Target:
    from hil_tests.gateway.ln.node_procs import Grid

    grid = Grid(tmp)  # a real node process on a shared ledger file
    proc = grid.add("fuzzed", "--tick", "3600")
    token = Path(proc.token_file).read_text().strip()
    port = int(proc.url.rsplit(":", 1)[1])

    def node_state() -> Any:
        info = proc.api("/info")
        return proc.api("/channels"), info["ledger_balance_msat"], info["height"], info["commits"]

    # not /connect: a fuzzed port could point the node at any local server and wait for it
    paths = ("/pay", "/invoice", "/close", "/open", "/payment", "/tick", "/channels", "/nope")
    corpus = [
        json.dumps(b).encode()
        for b in (
            {"invoice": "lnbcrt1p" + "q" * 40},
            {"requests": [["02" + "33" * 32, "44" * 32, 1000, "55" * 32]], "timeout": 0.2},
            {"amount_msat": 1000, "start": 1_900_000_000, "end": 1_900_003_600, "kwh": 1.0},
            {"channel_id": "66" * 32, "force": True},
            {"node_id": "02" + "77" * 32, "amount_msat": 5, "push_msat": 0},
            {"host": "127.0.0.1", "port": 9, "node_id": "02" + "77" * 32},
            {"payment_hash": "88" * 32},
        )
    ]
    rng = random.Random(11)
    good_headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}

    def run(data: bytes) -> bool:
        headers = dict(good_headers)
        r = rng.random()
        if r < 0.05:  # a wrong token: one hex digit changed, cut, or another one
            t = list(token)
            t[rng.randrange(len(t))] = rng.choice("0123456789abcdef")
            headers["Authorization"] = "Bearer " + "".join(t)[: rng.choice((64, 64, 63, 10, 0))]
        elif r < 0.08:
            headers["Content-Type"] = rng.choice(("text/plain", "", "application/jsonx"))
        elif r < 0.1:
            headers["Origin"] = "http://evil.example"
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            con.request("POST", rng.choice(paths), body=data, headers=headers)
            resp = con.getresponse()
            resp.read()
        finally:
            con.close()
        if resp.status >= 500:
            raise AssertionError(f"control API answered {resp.status}")
        return resp.status == 200

    return Target(
        "control", corpus, run, node_state, json_bodies=True, close=grid.close, state_every=20
    )


def ledger_target(tmp: Path) -> Target:
    from gateway.ledger import config as ledger_config
    from gateway.ledger import service, txs
    from gateway.ledger.client import LedgerClient
    from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR, write_config

    running = service.start(ledger_config.load(write_config(tmp / "ledger")))
    client = LedgerClient(running.url)
    chain = client.info()["chain"]
    made = [
        txs.make("enroll_participant", chain, participant=k.pubkey, name="p", role="prosumer")
        for k in (ALICE, BOB)
    ]
    for tx in made:
        client.submit(tx.signed_by(OPERATOR))
    deposit = txs.make("deposit", chain, account=ALICE.pubkey, amount_msat=10**6, reference="r")
    client.submit(deposit.signed_by(OPERATOR))
    fund = txs.make("channel_fund", chain, a=ALICE.pubkey, b=BOB.pubkey, amount_a_msat=1000,
                    amount_b_msat=0, dispute_blocks=5).signed_by(ALICE, BOB)  # fmt: skip
    client.submit(fund)
    state = txs.commitment_state(chain, fund.id, 3, 400, 500, ALICE.pubkey, "aa" * 32,
                                 [txs.state_htlc("a", 0, 100, "bb" * 32, 90)])  # fmt: skip
    bodies = [
        txs.make("withdraw", chain, account=ALICE.pubkey, amount_msat=5).signed_by(ALICE),
        txs.make(
            "channel_force_close",
            chain,
            channel=fund.id,
            state=state,
            state_sig=txs.sign_state(state, BOB),
        ).signed_by(ALICE),  # fmt: skip
        txs.make(
            "channel_htlc_claim", chain, channel=fund.id, party="b", htlc=0, preimage="cc" * 32
        ).signed_by(BOB),  # fmt: skip
        txs.make(
            "channel_close", chain, channel=fund.id, balance_a_msat=1000, balance_b_msat=0
        ).signed_by(ALICE, BOB),  # fmt: skip
        deposit.signed_by(OPERATOR),
    ]
    # the valid withdraw/force close/close are never submitted: their mutations must all fail
    corpus = [json.dumps(t.to_json()).encode() for t in bodies]
    valid = [t.to_json() for t in bodies[:4]]
    host, port = running.url.removeprefix("http://").split(":")
    con = [http.client.HTTPConnection(host, int(port), timeout=30)]

    def run(data: bytes) -> bool:
        try:
            if json.loads(data) in valid:
                return True  # a valid signed transaction (e.g. only whitespace changed): allowed
        except (ValueError, RecursionError):
            pass
        for attempt in (0, 1):
            try:
                con[0].request(
                    "POST", "/v1/tx", body=data, headers={"Content-Type": "application/json"}
                )
                resp = con[0].getresponse()
                resp.read()
                break
            except (http.client.HTTPException, OSError):
                con[0].close()
                con[0] = http.client.HTTPConnection(host, int(port), timeout=30)
                if attempt:
                    raise
        if resp.status >= 500 and resp.status != 503:
            raise AssertionError(f"ledger answered {resp.status}")
        if resp.will_close:
            con[0].close()
            con[0] = http.client.HTTPConnection(host, int(port), timeout=30)
        return resp.status == 200

    def ledger_state() -> Any:
        with running.node.lock:
            st = running.node.chain.state
            return (
                running.node.chain.tip.hash,
                hashlib.sha256(json.dumps(st.balances, sort_keys=True).encode()).hexdigest(),
                {k: c.status for k, c in st.channels.items()},
            )

    def close() -> None:
        con[0].close()
        running.stop()

    return Target("ledger", corpus, run, ledger_state, json_bodies=True, close=close)


TARGETS: dict[str, Callable[[Path], Target]] = {
    "modbus": lambda tmp: modbus_target(),
    "mqtt": lambda tmp: mqtt_target(),
    "reading": reading_target,
    "token": lambda tmp: token_target(),
    "invoice": lambda tmp: invoice_target(),
    "peer": lambda tmp: peer_target(),
    "control": control_target,
    "ledger": ledger_target,
}


def fuzz(target: Target, cases: int, seed: int, progress: bool = False) -> Result:
    rng = random.Random(seed)
    res = Result(target.name)
    before = target.state()
    t0 = time.perf_counter()
    for i in range(cases):
        seed_case = rng.choice(target.corpus)
        if target.json_bodies:
            data = json_case(target.corpus, rng)
        elif rng.random() < 0.03:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        else:
            data = mutate_bytes(seed_case, rng, target.corpus)
        try:
            accepted = target.run(data)
        except Exception:  # noqa: BLE001 - that is what we count
            res.crashes += 1
            if not res.first_crash:
                res.first_crash = f"{data[:120]!r}\n{traceback.format_exc()}"
            if len(res.samples) < 5:
                res.samples.append(data)
            accepted = True  # state unknown: re-read it
        res.cases += 1
        if accepted:
            before = target.state()
        elif (i + 1) % target.state_every == 0:
            now = target.state()
            if now != before:
                res.state_changes += 1
                before = now
        if not accepted:
            res.refused += 1
        if progress and (i + 1) % max(1, cases // 20) == 0:
            print(f"\r  {target.name:8} {i + 1:>7}/{cases}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    res.seconds = time.perf_counter() - t0
    return res


def run_all(names: list[str], cases: int, seed: int, progress: bool = False) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="sgfuzz-") as tmp:
        for name in names:
            d = Path(tmp) / name
            d.mkdir()
            target = TARGETS[name](d)
            try:
                results.append(fuzz(target, cases, seed, progress))
            finally:
                target.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cases", type=int, default=100_000, help="cases per parser")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    t0 = time.perf_counter()
    results = run_all(names, args.cases, args.seed, progress=True)
    print(
        f"{'target':8} {'cases':>8} {'crashes':>8} {'state chg':>9} {'refused':>8} {'wall s':>8} {'cases/s':>8}"
    )
    for r in results:
        rate = r.cases / r.seconds if r.seconds else 0
        print(f"{r.name:8} {r.cases:>8} {r.crashes:>8} {r.state_changes:>9} {r.refused:>8} "
              f"{r.seconds:>8.1f} {rate:>8.0f}")  # fmt: skip
        if r.first_crash:
            print(f"  first crash of {r.name}:\n{r.first_crash}")
    total = sum(r.cases for r in results)
    print(f"total {total} cases in {time.perf_counter() - t0:.1f} s (seed {args.seed})")
    return 1 if any(r.crashes or r.state_changes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
