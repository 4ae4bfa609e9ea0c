"""Three grid nodes on the bench, brought in the way an operator does it (docs/gateway.md):

a ledger node (`sgrid ledger run`), one mosquitto, and three `sgrid gateway run` processes from
their TOML configs: a producer (PV), a consumer (a home whose meter is an emulated board running
the real firmware) and the POD (its meter an emulated SDM630 on Modbus RTU). Each node's key comes
from `sgrid gateway node-id`, is enrolled and funded with `sgrid ledger enroll/deposit`, and the
shared [topology] makes the nodes open their channels themselves. No test code issues a token.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.emulated.host.bl0942_chip import BL0942Chip
from boards.emulated.host.vclock import VirtualClock
from gateway import clock
from gateway.ln.node.control import ControlClient
from hil_tests import REPO_ROOT
from hil_tests.gateway.gateway_proc import GatewayProcess
from hil_tests.gateway.ledger.conftest import OPERATOR, start_process
from hil_tests.gateway.ledger.conftest import write_config as write_ledger_config
from hil_tests.rig import procs
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, free_port
from hil_tests.rig.flash_reader import pubkey_from_console
from hil_tests.rig.pod_meter import EmulatedSdm630
from hil_tests.rig.polling import wait_until
from hil_tests.rig.stored_readings import stored_rows
from hil_tests.rig.wire import PtyWire
from sgcore.reading import meter_id_from_pubkey
from tools.build import build

SGRID = [sys.executable, "-c", "from gateway.cli import main; main()"]
CHANNEL_MSAT = 200_000_000
DEPOSIT_MSAT = 1_000_000_000
ROLES = {"pv": "producer", "home": "consumer", "pod": "pod"}
BUS = {"pv": "lv1", "home": "lv1", "pod": "lv0"}
MARKET = {
    "pv": "",
    "home": 'strategy = "consumer"\nmax_price_msat_per_kwh = 1000000\nneed_wh_per_hour = 1000\n'
    'forward_to = "pod"\nsettle_period_s = 60\n',
    "pod": 'strategy = "pod"\ntariff_msat_per_kwh = 2000000\nfeed_in_msat_per_kwh = 500000\n'
    "imbalance_price_msat_per_kwh = 2500000\n",
}
SURPLUS_PRICE = 400_000  # msat per kWh the POD pays for unsold export (rigs with a PV meter)
SURPLUS = {  # the long side: the PV's meter exports, the POD buys what the PV did not sell
    "pv": f'forward_to = "pod"\nsettle_period_s = 60\nsurplus_price_msat_per_kwh = {SURPLUS_PRICE}\n',
    "pod": f"settle_period_s = 60\nsurplus_price_msat_per_kwh = {SURPLUS_PRICE}\n",
    "home": "",
}


def sgrid(*args: str, check: bool = True, timeout: float = 60) -> str:
    out = subprocess.run(
        [*SGRID, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        raise AssertionError(f"sgrid {' '.join(args[:2])} failed ({out.returncode}): {out.stderr}")
    return out.stdout


@dataclass
class GridNodeProc:
    name: str
    dir: Path
    port: int
    control_port: int
    metrics_port: int
    node_id: str = ""
    gateway: GatewayProcess | None = None
    _client: ControlClient | None = field(default=None, repr=False, compare=False)

    @property
    def config(self) -> Path:
        return self.dir / "gateway.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def token_file(self) -> str:
        """The node's control API credential ([node] data_dir default: state/node)."""
        return str(self.dir / "state" / "node" / "control_token")

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """A control API request on a kept-alive connection (ControlClient; a restarted
        gateway's closed connection is noticed and a new one opened)."""
        if self._client is None:
            self._client = ControlClient(self.url, token_file=self.token_file, timeout=30)
        return self._client.call(path, body)

    def close_api(self) -> None:
        """Close the kept-alive control API connections (the next `api` call opens one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


@dataclass
class GridRig:
    workdir: Path
    speed: float = 1.0  # the meters' (virtual) clock; payments and delivery run in real time
    anchor_interval_s: float = 2.0
    nodes: dict[str, GridNodeProc] = field(default_factory=dict)
    meter: BoardProcess | None = None
    meter_pubkey: bytes = b""
    home_meter: bool = True  # the consumer's meter board (without it home buys for no meter)
    pv_meter: bool = False  # the producer's meter too: a BL0942 board whose chip sees pv_power_w
    pv_power_w: float = 0.0  # + import, - export
    pv_board: BoardProcess | None = None
    pv_meter_pubkey: bytes = b""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = VirtualClock(speed=self.speed)
        self.broker = Broker(self.workdir / "broker")
        self.pod_meter = EmulatedSdm630()
        self.ledger_proc: subprocess.Popen[str] | None = None
        self.ledger_url = ""
        self.operator_key = self.workdir / "operator.key"
        self.operator_key.write_text(OPERATOR.secret_hex())

    # --- configs ---------------------------------------------------------------------------------

    def _toml(self, n: GridNodeProc, topology: str) -> str:
        meter = 'meter = "home"\n' if n.name == "home" and self.home_meter else ""
        if n.name == "pv" and self.pv_meter:
            meter = 'meter = "pv"\n'
        market = MARKET[n.name] + (SURPLUS[n.name] if self.pv_meter else "")
        modbus = ""
        if n.name == "pod":
            modbus = (
                f'[[modbus.bus]]\nname = "grid"\nkind = "rtu"\nport = "{self.pod_meter.port}"\n'
                f"baudrate = {self.pod_meter.baudrate}\ntimeout_s = 0.5\n"
                '[[modbus.device]]\nname = "pod"\nbus = "grid"\nmodel = "sdm630"\npoll_s = 1.0\n'
            )
        return (
            f'[gateway]\nsite = "{n.name}"\nstate_dir = "state"\n'
            f'[mqtt]\nhost = "{self.broker.host}"\nport = {self.broker.port}\n'
            f"[ingest]\nresend_cooldown_s = 0.5\n"
            f'[metrics]\nlisten = "127.0.0.1"\nport = {n.metrics_port}\n'
            f"[homeassistant]\nenabled = false\n"
            f'[node]\nenabled = true\nname = "{n.name}"\nlisten = "127.0.0.1"\nport = {n.port}\n'
            f"control_port = {n.control_port}\nchannel_msat = {CHANNEL_MSAT}\n"
            f"accept_max_msat = {CHANNEL_MSAT}\ntick_s = 0.1\n{meter}"
            f'[ledger]\nurl = "{self.ledger_url}"\n'
            f"[credit]\nresend_s = 1.0\n"
            f"[anchor]\ninterval_s = {self.anchor_interval_s}\nretry_s = 1.0\n"
            f'[market]\nrole = "{ROLES[n.name]}"\n{market if topology else ""}' + modbus + topology
        )

    def _topology(self) -> str:
        out = ""
        for n in self.nodes.values():
            out += (
                f'[[topology.node]]\nname = "{n.name}"\nbus = "{BUS[n.name]}"\n'
                f'node_id = "{n.node_id}"\nhost = "127.0.0.1"\nport = {n.port}\n'
            )
        return out + '[[topology.line]]\na = "lv0"\nb = "lv1"\n'

    # --- bring-up --------------------------------------------------------------------------------

    def start(self) -> GridRig:
        """Bring the grid up; a bring-up that fails half-way stops what it started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> GridRig:
        self.broker.start()
        self.pod_meter.start()
        ledger_dir = self.workdir / "ledger"
        self.ledger_proc, self.ledger_url = start_process(write_ledger_config(ledger_dir))
        self.validator = json.loads(sgrid("ledger", "info", "--ledger", self.ledger_url))[
            "validator"
        ]
        for name in ("pv", "home", "pod"):
            d = self.workdir / name
            d.mkdir(exist_ok=True)
            n = GridNodeProc(name, d, free_port(), free_port(), free_port())
            self.nodes[name] = n
            n.config.write_text(self._toml(n, ""))
            n.node_id = sgrid("gateway", "node-id", "--config", str(n.config)).strip()
            self._enroll(n)
        topo = self._topology()
        for n in self.nodes.values():
            n.config.write_text(self._toml(n, topo))
            sgrid("gateway", "check-config", "--config", str(n.config))
        if self.home_meter:
            self._start_meter(self.nodes["home"])
        if self.pv_meter:
            self._start_pv_meter(self.nodes["pv"])
        for n in self.nodes.values():
            self.start_gateway(n)
        self.wait_channels()
        return self

    def _enroll(self, n: GridNodeProc) -> None:
        key = ["--ledger", self.ledger_url, "--key", str(self.operator_key)]
        sgrid("ledger", "enroll", n.node_id, "--name", n.name, "--role", ROLES[n.name], *key)
        sgrid("ledger", "deposit", n.node_id, str(DEPOSIT_MSAT), "--reference", n.name, *key)

    def _start_meter(self, home: GridNodeProc) -> None:
        site_key = sgrid("gateway", "site-key", "--config", str(home.config)).strip()
        flash = home.dir / "meter" / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        cfg = {
            "site": "home",
            "broker_port": self.broker.port,
            "issuer_pubkey": site_key,
            "interval_s": 60,
            "min_switch_s": 0,
        }
        (flash / "config.json").write_text(json.dumps(cfg))
        self.meter = BoardProcess(flash_dir=flash, board_id="home-meter", run_dir=home.dir / "meter",
                                  clock=self.clock, rom_dir=build("emulated"))  # fmt: skip
        self.meter.start(wait_banner=False)
        self.meter.expect("meter ready", timeout=120)
        self.meter_pubkey = pubkey_from_console(self.meter.console)
        sgrid("gateway", "enroll-meter", "--config", str(home.config), "--pubkey",
              self.meter_pubkey.hex(), "--label", "home")  # fmt: skip
        sgrid("ledger", "enroll-meter", self.meter_pubkey.hex(), "--owner", home.node_id,
              "--ledger", self.ledger_url, "--key", str(self.operator_key))  # fmt: skip

    def _start_pv_meter(self, pv: GridNodeProc) -> None:
        site_key = sgrid("gateway", "site-key", "--config", str(pv.config)).strip()
        flash = pv.dir / "meter" / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        cfg = {"site": "pv", "broker_port": self.broker.port, "issuer_pubkey": site_key,
               "interval_s": 60, "checkpoint_s": 60, "min_switch_s": 0,
               "meter_source": "bl0942", "critical_load": True}  # fmt: skip
        (flash / "config.json").write_text(json.dumps(cfg))
        self.pv_wire = PtyWire("pv-bl0942")
        self.pv_chip = BL0942Chip(self.pv_wire.a, lambda: (self.pv_power_w, 230.0),
                                  clock=self.clock.now)  # fmt: skip
        self.pv_board = BoardProcess(flash_dir=flash, board_id="pv-meter", run_dir=pv.dir / "meter",
                                     clock=self.clock, rom_dir=build("emulated"),
                                     uarts={"meter": self.pv_wire.b})  # fmt: skip
        self.pv_board.start(wait_banner=False)
        self.pv_board.expect("meter ready", timeout=120)
        self.pv_meter_pubkey = pubkey_from_console(self.pv_board.console)
        sgrid("gateway", "enroll-meter", "--config", str(pv.config), "--pubkey",
              self.pv_meter_pubkey.hex(), "--label", "pv")  # fmt: skip
        sgrid("ledger", "enroll-meter", self.pv_meter_pubkey.hex(), "--owner", pv.node_id,
              "--ledger", self.ledger_url, "--key", str(self.operator_key))  # fmt: skip

    def state_db(self, node: str, name: str) -> Any:
        """A read-only connection to one of a node's state databases."""
        import sqlite3

        db = self.nodes[node].dir / "state" / name
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)

    @property
    def meter_id(self) -> bytes:
        return meter_id_from_pubkey(self.meter_pubkey)

    def start_gateway(self, n: GridNodeProc) -> None:
        c = self.clock
        env = clock.env_for(c.speed, c.real_t0, c.virtual_t0 or c.real_t0)
        n.gateway = GatewayProcess(n.config, self.broker, n.name, extra_env=env)
        n.gateway.wait_online(timeout=90)  # headroom for a loaded machine, not a measured figure
        wait_until(lambda: self._answers(n), 60, f"{n.name}'s channel node")

    def _answers(self, n: GridNodeProc) -> bool:
        try:
            n.api("/info")
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def wait_channels(self, timeout: float = 120.0) -> None:
        """pv-home, home-pod, pv-pod: the feeder lv1 and the line lv0-lv1 (everyone adjacent)."""

        def all_open() -> bool:
            for n in self.nodes.values():
                states = [c["state"] for c in n.api("/channels")]
                if states.count("OPEN") < 2:
                    return False
            return True

        wait_until(all_open, timeout, "the topology's channels to open")

    def channel_between(self, a: str, b: str) -> dict[str, Any]:
        peer = self.nodes[b].node_id
        return next(c for c in self.nodes[a].api("/channels") if c["peer"] == peer)

    # --- what the rig looks at -------------------------------------------------------------------

    def relay(self) -> int:
        assert self.meter is not None
        return int(self.meter.state()["gpio"]["relay"])  # type: ignore[index]

    def credit_rows(self) -> list[tuple]:
        import sqlite3

        db = self.nodes["home"].dir / "state" / "tokens.sqlite3"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(
                "SELECT payment_hash, status, token_id, wh, reason, issuer_node FROM credit"
            ).fetchall()
        finally:
            con.close()

    def tokens_for(self, payment_hash: bytes) -> list[tuple]:
        import sqlite3

        db = self.nodes["home"].dir / "state" / "tokens.sqlite3"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(
                "SELECT token_id, amount_wh FROM tokens WHERE payment = ?", (payment_hash,)
            ).fetchall()
        finally:
            con.close()

    def latest_reading(self) -> tuple[int, int]:
        """(seq, credit_wh) of the newest reading the consumer's gateway stored."""
        rows = stored_rows(self.nodes["home"].dir / "state" / "readings.sqlite3", self.meter_id)
        return (rows[-1]["seq"], rows[-1]["credit_wh"]) if rows else (-1, 0)

    def receipt(self, wh: int, price_msat: int, start_in_s: int = 900) -> str:
        """A producer receipt made through its node (`sgrid invoice create`), for a window
        `start_in_s` ahead in the nodes' (virtual) time: in real time, a bring-up that took long
        at speed 10 put the window in the nodes' past (the receipt expired at once)."""
        start = int(self.clock.now()) + start_in_s
        out = sgrid("invoice", "create", "--node-url", self.nodes["pv"].url,
                    "--token-file", self.nodes["pv"].token_file, "--amount-msat",
                    str(price_msat), "--node", "pv", "--start", str(start), "--end",
                    str(start + 900), "--kwh", str(wh / 1000))  # fmt: skip
        return json.loads(out)["invoices"][0]

    def offer(self, invoice: str) -> dict[str, Any]:
        """The producer offers its receipt to its neighbours (`sgrid channel offer`)."""
        return json.loads(
            sgrid(
                "channel",
                "offer",
                invoice,
                "--node-url",
                self.nodes["pv"].url,
                "--token-file",
                self.nodes["pv"].token_file,
            )
        )

    def pay(self, invoice: str) -> dict[str, Any]:
        """The consumer pays with `sgrid pay`, as its owner (or its market agent) would."""
        return json.loads(
            sgrid(
                "pay",
                invoice,
                "--node-url",
                self.nodes["home"].url,
                "--token-file",
                self.nodes["home"].token_file,
            )
        )

    def stop(self) -> None:
        for n in self.nodes.values():
            if n.gateway is not None:
                n.gateway.close()
            n.close_api()
        if self.meter is not None:
            self.meter.stop()
        if self.pv_board is not None:
            self.pv_board.stop()
            self.pv_chip.stop()
            self.pv_wire.close()
        procs.stop(self.ledger_proc)
        self.ledger_proc = None
        self.pod_meter.stop()
        self.broker.stop()

    def __enter__(self) -> GridRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
