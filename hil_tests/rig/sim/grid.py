"""Bring the simulated microgrid up the way an operator and installers bring a real one in.

One ledger node (`sgrid ledger run`; with `ledger="etcd"` three replicas on a real 3-member etcd
cluster), one mosquitto started with the production config (deploy/mosquitto/: TLS only, an
account per meter and per gateway, the ACL), and per grid node: an `sgrid gateway run` process
(its channel node in-process) and, except for the POD, an emulated ESP32 meter running the real
firmware. The POD's meter is an emulated SDM630 on Modbus RTU. Operator steps go through the
`sgrid` commands a person would type (`ledger enroll/deposit/enroll-meter`, `broker add-*`,
`gateway enroll-meter/check-config`), run in parallel so a 50-node grid comes up in reasonable time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.emulated.host.bl0942_chip import BL0942Chip
from boards.emulated.host.vclock import VirtualClock
from gateway import clock
from gateway.ledger.keys import SigningKey
from gateway.ln.errors import LnError
from gateway.ln.node.control import call
from hil_tests import REPO_ROOT
from hil_tests.gateway.gateway_proc import GatewayProcess
from hil_tests.rig import procs
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, free_port
from hil_tests.rig.certs import write_ca_and_server
from hil_tests.rig.flash_reader import pubkey_from_console
from hil_tests.rig.loads import EnergyIntegrator
from hil_tests.rig.microgrid import Microgrid, NodeSpec
from hil_tests.rig.pod_meter import EmulatedSdm630
from hil_tests.rig.tcp_proxy import RelayBank
from hil_tests.rig.wire import PtyWire
from sgcore.reading import meter_id_from_pubkey
from tools.build import build

SGRID = [sys.executable, "-c", "from gateway.cli import main; main()"]
DEPLOY = REPO_ROOT / "deploy" / "mosquitto"
DEPOSIT_MSAT = 2_000_000_000  # per node: 2,000 sat (about 10 kWh at the tariff)
CHANNEL_MSAT = 400_000_000  # each end of every topology channel
CHECKPOINT_S = 60  # the meters' checkpoint period (a power cut loses at most its energy)
# a meter's idle step sleeps at least this long in real time: at 480x its 250 ms idle step would
# be half a real millisecond and every board would spin a core (inputs and data wake it at once).
# Measured at 480x, one board: 0.30 cores with a 5 ms floor, 0.15 with 20 ms, 0.10 with 50 ms (a
# reading signed every 15 virtual minutes either way): at 5 ms the idle steps of 9 boards alone
# took more than the 2 cores (since the board's cheaper host calls and collections, an idle board
# at 480x: 0.022 cores at 20 ms, 0.021 at 40 ms: the floor stays, for its latency). The driver
# keeps its steps 1.5 floors away from a period boundary
# (driver.run_until), so a meter closes its interval before the pulses after the boundary come.
# Per 10 boards: more boards share the same cores, and idle steps are pure overhead.
IDLE_FLOOR_MS = 20.0
ROLES = {"home": "consumer", "critical": "consumer", "ev": "consumer", "pv": "producer",
         "battery": "prosumer", "pod": "pod"}  # fmt: skip


class SimError(RuntimeError):
    """A step of the sim that failed; the message is one line naming the node and what failed."""


class NodeTimeout(SimError):
    """A node's control API did not answer (in time)."""


def api_timeout_s(nodes: int, load: float | None = None, cores: int | None = None) -> float:
    """Real seconds the rig waits for one answer of a node's control API: 30 s on a small grid,
    more with the nodes sharing the cores and with the load measured now (every board and
    gateway of a 50-node grid on 2 cores waits its turn: answers took over 30 s at load 110).
    The node answers from memory; a timeout is only ever spent on a node that is not there."""
    load = os.getloadavg()[0] if load is None else load
    cores = cores or os.cpu_count() or 1
    return round(min(API_TIMEOUT_MAX_S, 30.0 * max(1.0, nodes / 10, load / (4 * cores))), 1)


API_TIMEOUT_MAX_S = 300.0
ASK_WORKERS = 16  # at most this many control requests of the rig in flight at once


_CLI_LOCK = threading.Lock()


def in_process(*args: str) -> str:
    """An `sgrid` command run in this process (the same code a person's command runs, without
    an interpreter start-up each: those cost a second of CPU apiece on a 2-core machine)."""
    from click.testing import CliRunner

    from gateway.cli import main as sgrid_main

    with _CLI_LOCK:  # CliRunner swaps sys.stdout: one command at a time
        got = CliRunner().invoke(sgrid_main, list(args))
    if got.exit_code != 0:
        raise SimError(f"sgrid {' '.join(args[:2])}: {got.output.strip()[-600:]}")
    return got.stdout


@dataclass
class SimNode:
    spec: NodeSpec
    dir: Path
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    node_id: str = ""
    site_key: str = ""
    gateway: GatewayProcess | None = None
    board: BoardProcess | None = None
    meter_pubkey: bytes = b""
    broker_password: str = ""
    chip: BL0942Chip | None = None
    wire: PtyWire | None = None
    energy: EnergyIntegrator = field(default_factory=EnergyIntegrator)
    api_timeout_s: float = 30.0  # SimGrid sets it from the grid's size and the load

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def config(self) -> Path:
        return self.dir / "gateway.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def meter_hex(self) -> str:
        return meter_id_from_pubkey(self.meter_pubkey).hex() if self.meter_pubkey else ""

    @property
    def token_file(self) -> str:
        """The node's control API credential ([node] data_dir default: state/node)."""
        return str(self.state_dir / "node" / "control_token")

    def api(
        self, path: str, body: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """A control API call; NodeTimeout (one line: the node, the call, the wait) if the node
        does not answer, LnError for an error it answered."""
        wait = self.api_timeout_s if timeout is None else timeout
        try:
            return call(self.url, path, body, timeout=wait, token_file=self.token_file)
        except LnError as exc:
            if "cannot reach" not in str(exc):
                raise
            why = "timed out" if "timed out" in str(exc) else str(exc).rsplit(": ", 1)[-1]
            raise NodeTimeout(f"{self.name}: control API {path} did not answer within "
                              f"{wait:g} s ({why}); its log: {self.dir / 'gateway.log'}") from None  # fmt: skip


def link_timeouts(speed: float) -> dict[str, int]:
    """Meter config for a board at `speed`: its ticks are virtual, the gateway and the broker
    answer in real time. The journal is republished after 20 real seconds without an ack (60
    virtual seconds are 125 ms at 480x: a loaded machine republished all day), a PINGREQ after
    30 real seconds idle."""
    return {"ack_timeout_s": min(86_400, max(60, round(20 * speed))),
            "mqtt_keepalive_s": min(65535, max(60, round(30 * speed)))}  # fmt: skip


@dataclass
class SimGrid:
    grid: Microgrid
    workdir: Path
    speed: float
    ledger: str = "embedded"  # or "etcd"
    interval_s: int = 900
    node_market: dict[str, str] = field(default_factory=dict)  # node -> its [market] lines
    nodes: dict[str, SimNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # absolute: every node's config names files under it, and a relative path would be
        # read from the config's own directory (bench_sim's run/bench-sim/n50 failed that way)
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = VirtualClock(speed=self.speed)
        self.broker_dir = self.workdir / "broker"
        self.broker = Broker(self.broker_dir, port=free_port())
        self.pod_meter = EmulatedSdm630()
        self.operator = SigningKey(os.urandom(32))
        self.operator_key = self.workdir / "operator.key"
        self.ledger_procs: list[subprocess.Popen[str]] = []
        self.ledger_urls: list[str] = []
        self.etcd: Any = None
        self._accounts_lock = threading.Lock()
        self.proxies = RelayBank()  # the wires between neighbours (cut for a partition)
        self.channel_history: dict[tuple[str, str], list[list[float]]] = {}
        self.validator = ""
        self.phases: dict[str, float] = {}  # bring-up step -> wall seconds
        self.channel_ids: set[str] = set()  # every channel id a node ever listed
        self.channels_up = 0  # channels open at the end of the bring-up
        self._expected: set[frozenset[str]] | None = None
        for spec in self.grid.nodes:
            self.nodes[spec.name] = SimNode(spec, self.workdir / spec.name)
        self.power_w: dict[str, float] = {name: 0.0 for name in self.nodes}  # what chips see
        self.idle_floor_ms = IDLE_FLOOR_MS * max(1.0, (len(self.nodes) - 1) / 10)
        # every node anchors its readings every 3 real seconds (3 s is 24 virtual minutes at
        # 480x; the day's last readings wait for their anchor before they are checked, 10 s made
        # that wait 5-10 s), on a grid of more than 10 nodes every second per node: anchors are
        # most of the ledger's transactions and each block it seals for them ages every HTLC by
        # one block (56 nodes anchoring every 10 s sealed 2 blocks a real second: payments over
        # many hops of a loaded grid ran out of blocks, and their channels were force-closed)
        self.anchor_interval_s = 3.0 if len(self.nodes) <= 10 else float(len(self.nodes))
        # blocks a node allows per hop of a payment ([node] cltv_delta; the payer adds one more
        # to the payee's minimum): the ledger seals about a block a real second at 56 nodes
        # (five while a channel closes) and a hop of that loaded grid took 4-10 s: with 6
        # blocks (the default, kept up to 10 nodes) HTLCs expired on their way and their
        # channels were force-closed
        self.cltv_delta = max(6, round(6 * len(self.nodes) / 10))

    @property
    def ledger_url(self) -> str:
        return ",".join(self.ledger_urls)

    # --- bring-up --------------------------------------------------------------------------------

    def start(self, progress: Any = None) -> SimGrid:
        """Bring the grid up. What does not depend on each other runs at once: the meters' first
        boots while the ledger and the broker start (each meter stopped as soon as it has its
        keys: an idle board costs CPU, 0.1 cores at 480x, that 49 others' boots then lack); the
        operator's ledger transactions go in two batches (POST /v1/txs); the gateways start
        before the meters' second boots, which then run while the channels open (50 booted
        boards idling at the clock's speed took the cores the 50 gateways needed to start)."""
        said = progress or (lambda what: None)
        mark = [time.monotonic(), ""]

        def step(what: str) -> None:
            now = time.monotonic()
            if mark[1]:
                self.phases[str(mark[1])] = round(now - float(mark[0]), 2)
            mark[:] = [now, what]
            if what:
                said(what)

        slack = 2.0 * len(self.nodes)  # 50 boards and gateways start on a 2-core machine
        self.operator_key.write_text(self.operator.secret_hex())
        step("meters: first boot (keys); ledger; broker (TLS, accounts, ACL); node keys")
        rom = build("emulated")
        metered = [n for n in self.nodes.values() if n.spec.kind != "pod"]
        for n in metered:
            self._boot_meter(n, rom, first=True)
        keys = ThreadPoolExecutor(max(1, len(metered)), thread_name_prefix="first-boot")
        first_boots = [keys.submit(self._meter_keys, n, 120 + slack) for n in metered]
        self._start_broker()
        self._start_ledger()
        from gateway.ledger.client import LedgerClient

        client = LedgerClient(self.ledger_urls)
        self.validator = str(client.info()["validator"])
        close_client(client)
        self.pod_meter.start()
        for n in self.nodes.values():
            self._prepare(n)
        keys.shutdown()
        for f in first_boots:
            f.result()  # a meter that did not come up raises its BoardTimeout here
        step("enrolment (ledger, gateway, broker)")
        self._enroll_all()
        self.broker.start()
        self._make_relays()
        for n in self.nodes.values():
            n.config.write_text(self._toml(n, self._topology(n)))
            in_process("gateway", "check-config", "--config", str(n.config))
        step("gateways")
        for n in self.nodes.values():
            self.start_gateway(n)
        self._wait_all_answer(120 + 2 * slack)
        step("channels along the feeder")  # and the meters' second boots meanwhile
        for n in metered:
            self._boot_meter(n, rom, first=False)
        self.wait_channels(180 + 2 * slack)
        step("meters ready")
        self._wait_meters_ready(metered, 120 + slack)
        step("")
        return self

    @staticmethod
    def _wait_meters_ready(metered: list[SimNode], timeout: float) -> None:
        """Until every meter's second boot is done, and a critical load's relay is closed: the
        day must not start on a meter still booting (at 720x a boot of ~1 real s is 12 virtual
        minutes; the clinic's relay was open for the first 407 s of the day)."""
        for n in metered:
            assert n.board is not None
            n.board.expect("meter ready", timeout=timeout)
            if n.spec.kind == "critical":
                n.board.expect("relay closed", timeout=timeout)

    @staticmethod
    def _meter_keys(n: SimNode, timeout: float) -> None:
        """A meter's first boot: until it is ready, its public key from the console; then off."""
        assert n.board is not None
        try:
            n.board.expect("meter ready", timeout=timeout)
            n.meter_pubkey = pubkey_from_console(n.board.console)
        finally:
            n.board.stop()

    def api_timeout(self) -> float:
        """The control API's wait now (api_timeout_s: the grid's size, the load now)."""
        wait = api_timeout_s(len(self.nodes))
        for n in self.nodes.values():
            n.api_timeout_s = wait
        return wait

    def ask_all(
        self, path: str, nodes: Iterable[SimNode] | None = None
    ) -> dict[str, Any | Exception]:
        """`path` of every node's control API (or of `nodes`), at most ASK_WORKERS requests in
        flight: node name -> its answer, or the exception (NodeTimeout, LnError) it gave. One
        after the other, 50 nodes on a loaded machine took minutes."""
        todo = list(self.nodes.values() if nodes is None else nodes)
        self.api_timeout()

        def ask(n: SimNode) -> Any | Exception:
            try:
                return n.api(path)
            except Exception as exc:  # noqa: BLE001 - the caller decides what a miss means
                return exc

        if not todo:
            return {}
        with ThreadPoolExecutor(min(ASK_WORKERS, len(todo)), thread_name_prefix="ask") as pool:
            return dict(zip((n.name for n in todo), pool.map(ask, todo), strict=True))

    def deposit_msat(self, name: str) -> int:
        """What the operator deposits for node `name` on the ledger (all the money it has): the
        POD, with a channel to every hub of a long feeder, funds more channels than 2,000 sat
        cover, so each node gets at least its channels' funding plus two channels' worth."""
        links = sum(1 for pair in self.expected_channels() if name in pair)
        return max(DEPOSIT_MSAT, (links + 2) * CHANNEL_MSAT)

    def sample_channels(self, now: float) -> None:
        """One point per channel end for the report's balance plot; every channel id seen goes
        into `channel_ids` (the ledger's supply is judged over all of them)."""
        by_id = {n.node_id: n.name for n in self.nodes.values()}
        for name, listed in self.ask_all("/channels").items():
            if isinstance(listed, Exception):
                continue  # down or too slow: no point
            n = self.nodes[name]
            for c in listed:
                self.channel_ids.add(str(c["channel_id"]))
                peer = by_id.get(c["peer"])
                if peer is not None and n.name < peer:
                    self.channel_history.setdefault((n.name, peer), []).append(
                        [now, float(c["local_msat"])]
                    )

    def _wait_all_answer(self, timeout: float) -> None:
        """Until every channel node answers (asked all at once); else name those that do not."""
        silent = list(self.nodes.values())
        deadline = time.monotonic() + timeout
        while silent and time.monotonic() < deadline:
            got = self.ask_all("/info", silent)
            silent = [n for n in silent if isinstance(got[n.name], Exception)]
            if silent:
                time.sleep(0.2)
        if silent:
            n = silent[0]
            raise NodeTimeout(f"{', '.join(m.name for m in silent)}: the channel node did not "
                              f"answer /info within {timeout:g} s of the start; "
                              f"{n.name}'s log: {n.dir / 'gateway.log'}")  # fmt: skip

    def wait_answers(self, n: SimNode, timeout: float = 60.0) -> None:
        self._wait(lambda: self._answers(n), timeout, f"{n.name}'s channel node")

    def _start_broker(self) -> None:
        write_ca_and_server(self.broker_dir)
        text = (DEPLOY / "seamless-grid.conf").read_text()
        text = text.replace("/etc/mosquitto/sgrid/", f"{self.broker_dir}/")
        text = text.replace("listener 8883\n", f"listener {self.broker.port} 127.0.0.1\n")
        # started as root, mosquitto would drop to user "mosquitto", who cannot read the workdir
        self.broker.conf = text + (
            f"user root\npersistence false\nmax_queued_messages 100000\n"
            f"log_dest file {self.broker.log_path}\nlog_type error\nlog_type warning\n"
        )

    def _start_ledger(self) -> None:
        validator = SigningKey(os.urandom(32))
        replicas = 1
        replication = ""
        if self.ledger == "etcd":  # docs/ledger.md, "Replicated mode": one log, three replicas
            from hil_tests.gateway.ledger.etcd_cluster import start_cluster

            self.etcd = start_cluster(self.workdir / "etcd")
            replicas = 3
            endpoints = ", ".join(f'"{e}"' for e in self.etcd.endpoints)
            replication = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 20\n"
        genesis_ms = int(time.time() * 1000)  # one for every replica: they build one genesis
        for i in range(replicas):
            d = self.workdir / f"ledger-{i}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "validator.key").write_text(validator.secret_hex())
            cfg = d / "ledger.toml"
            cfg.write_text(
                f'[ledger]\nname = "sim-grid"\noperator = "{self.operator.pubkey}"\n'
                f'validator_key_file = "validator.key"\ngenesis_time_ms = {genesis_ms}\n'
                f'db = "ledger.sqlite"\nlisten = "127.0.0.1:0"\nidle_block_ms = 200\n'
                f"commit_timeout_s = 30\n{replication}"
            )
            with open(d / "ledger.log", "w") as log:
                proc = procs.spawn([*SGRID, "ledger", "run", "--config", str(cfg)], cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=log, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
            self.ledger_procs.append(proc)
            assert proc.stdout is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if "listening" in line:
                    self.ledger_urls.append(line.split("listening", 1)[1].strip())
                    break
                if proc.poll() is not None:
                    raise SimError(f"the ledger did not start: see {d / 'ledger.log'}")
            else:
                raise SimError("the ledger did not start within 60 s")

    def _prepare(self, n: SimNode) -> None:
        n.dir.mkdir(parents=True, exist_ok=True)
        n.config.write_text(self._toml(n, ""))
        n.node_id = in_process("gateway", "node-id", "--config", str(n.config)).strip()
        # the site key the meter verifies acks and tokens with (created on first use)
        n.site_key = in_process("gateway", "site-key", "--config", str(n.config)).strip()

    def _boot_meter(self, n: SimNode, rom: Path, first: bool) -> None:
        flash = n.dir / "meter" / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {
            "site": n.name,
            "broker_host": "localhost",
            "broker_port": self.broker.port,
            "interval_s": self.interval_s,
            "checkpoint_s": CHECKPOINT_S,
            **link_timeouts(self.speed),  # ack timeout and keepalive in real seconds
            "min_switch_s": 0,
            "meter_source": n.spec.meter_source,
            "critical_load": n.spec.kind in ("critical", "pv", "battery"),
            # the broker's patience in the meter's (virtual) clock: 10 real seconds
            "mqtt_timeout_s": min(86_400, max(10, int(10 * self.speed))),
        }
        if not first:
            cfg.update(
                issuer_pubkey=n.site_key,
                broker_user=n.meter_hex,
                broker_password=n.broker_password,
                broker_tls_ca=_ca_on_flash(flash, self.broker_dir / "ca.pem"),
            )
        (flash / "config.json").write_text(json.dumps(cfg))
        uarts = {}
        if n.spec.meter_source == "bl0942":
            if n.wire is None:  # the metering chip, on the meter's UART
                n.wire = PtyWire(f"{n.name}-bl0942")
                n.chip = BL0942Chip(n.wire.a, self._chip_load(n.name), clock=self.clock.now)
            uarts = {"meter": n.wire.b}
        n.board = BoardProcess(flash_dir=flash, board_id=n.name, run_dir=n.dir / "meter",
                               clock=self.clock, rom_dir=rom, uarts=uarts,
                               extra_args=["--idle-floor-ms", str(self.idle_floor_ms)])  # fmt: skip
        n.board.start(wait_banner=False)

    def _chip_load(self, name: str) -> Any:
        return lambda: (self.power_w[name], 230.0)

    def _enroll_all(self) -> None:
        """What the operator and the installers do for every node (docs/gateway.md, "Bringing a
        node in"): the same library calls as `sgrid ledger enroll/deposit/enroll-meter`, `sgrid
        broker add-gateway/add-meter` and `sgrid gateway enroll-meter`, in-process so that 50
        nodes come up in seconds rather than minutes of interpreter start-ups; the ledger
        transactions in two batches (participants first: deposits and meters name them)."""
        from gateway.ledger import txs
        from gateway.ledger.client import LedgerClient

        client = LedgerClient(self.ledger_urls, retries=3)
        chain = str(client.info()["chain"])
        nodes = list(self.nodes.values())

        def tx(kind: str, **fields: Any) -> Any:
            return txs.make(kind, chain, **fields).signed_by(self.operator)

        first = [tx("enroll_participant", participant=n.node_id, name=n.name,
                    role=ROLES[n.spec.kind]) for n in nodes]  # fmt: skip
        second = [tx("deposit", account=n.node_id, amount_msat=self.deposit_msat(n.name),
                     reference=n.name)
                  for n in nodes]  # fmt: skip
        second += [tx("enroll_meter", meter=n.meter_pubkey.hex(), owner=n.node_id)
                   for n in nodes if n.meter_pubkey]  # fmt: skip
        for batch in (first, second):
            for i in range(0, len(batch), 500):
                for got in client.submit_many(batch[i : i + 500]):
                    if isinstance(got, Exception):
                        raise SimError(f"enrolment on the ledger: {got}")
        close_client(client)
        for n in nodes:
            self._enroll_locally(n)

    def _enroll_locally(self, n: SimNode) -> None:
        from gateway.config import load_config
        from gateway.ingest.store import ReadingStore
        from gateway.mqtt import accounts

        cfg = load_config(n.config)
        secret = n.dir / "gw.secret"
        password = accounts.new_password()
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        with self._accounts_lock:  # one passwd and one acl file for the whole broker
            accounts.add_password(self.broker_dir / "passwd", f"gw-{n.name}", password)
            accounts.write_acl(
                self.broker_dir / "acl", accounts.gateway_acl(n.name, f"gw-{n.name}")
            )
        if not n.meter_pubkey:
            return
        store = ReadingStore(cfg.database)
        try:
            store.enroll(n.meter_pubkey, n.name, 0)
        finally:
            store.close()
        n.broker_password = accounts.new_password()
        with self._accounts_lock:
            accounts.add_password(self.broker_dir / "passwd", n.meter_hex, n.broker_password)
            accounts.write_acl(self.broker_dir / "acl", accounts.meter_acl(n.name, n.meter_hex))

    def _toml(self, n: SimNode, topology: str) -> str:
        meter = f'meter = "{n.name}"\n' if n.spec.kind != "pod" else ""
        modbus = ""
        if n.spec.kind == "pod":
            modbus = (
                f'[[modbus.bus]]\nname = "grid"\nkind = "rtu"\nport = "{self.pod_meter.port}"\n'
                f"baudrate = {self.pod_meter.baudrate}\ntimeout_s = 0.5\n"
                '[[modbus.device]]\nname = "pod"\nbus = "grid"\nmodel = "sdm630"\npoll_s = 2.0\n'
            )
        market = self.node_market.get(n.name, "")
        return (
            f'[gateway]\nsite = "{n.name}"\nstate_dir = "state"\n'
            f'[mqtt]\nhost = "localhost"\nport = {self.broker.port}\n'
            f'username = "gw-{n.name}"\npassword_file = "gw.secret"\n'
            f'tls_ca_file = "{self.broker_dir / "ca.pem"}"\n'
            f"[ingest]\nresend_cooldown_s = 0.5\n"
            f'[metrics]\nlisten = "127.0.0.1"\nport = {n.metrics_port}\n'
            f"[homeassistant]\nenabled = false\n"
            f'[node]\nenabled = true\nname = "{n.name}"\nlisten = "127.0.0.1"\nport = {n.port}\n'
            f"control_port = {n.control_port}\nchannel_msat = {CHANNEL_MSAT}\n"
            f"accept_max_msat = {CHANNEL_MSAT}\ntick_s = 0.1\ncltv_delta = {self.cltv_delta}\n"
            f"{meter}"
            f'[ledger]\nurl = "{self.ledger_url}"\n'
            f"[credit]\nresend_s = 1.0\n"
            f"[anchor]\ninterval_s = {self.anchor_interval_s:g}\nretry_s = 2.0\n"
            f'[market]\nrole = "{ROLES[n.spec.kind]}"\n{market if topology else ""}'
            + modbus
            + topology
        )

    def _make_relays(self) -> None:
        for pair in self.expected_channels():
            a, b = sorted(pair)
            self.proxies.add(a, b, self.nodes[b].port)
            self.proxies.add(b, a, self.nodes[a].port)

    def _topology(self, me: SimNode) -> str:
        """The operator's [topology], as `me` sees it: its neighbours behind the bench's relays."""
        topo = self.grid.topology
        out = ""
        for n in self.nodes.values():
            port = n.port if n is me else (self.proxies.port(me.name, n.name) or n.port)
            out += (
                f'[[topology.node]]\nname = "{n.name}"\nbus = "{topo.bus_of(n.name)}"\n'
                f'node_id = "{n.node_id}"\nhost = "127.0.0.1"\nport = {port}\n'
            )
        for line in topo.lines:
            out += f'[[topology.line]]\na = "{line.from_bus}"\nb = "{line.to_bus}"\n'
        for a, b in self.grid.rebalance:  # the hubs' channels to the POD (microgrid.py)
            out += f'[[topology.rebalance]]\na = "{a}"\nb = "{b}"\n'
        return out

    def start_gateway(self, n: SimNode) -> None:
        c = self.clock
        env = clock.env_for(c.speed, c.real_t0, c.virtual_t0 or c.real_t0)
        n.gateway = GatewayProcess(n.config, self.broker, n.name, extra_env=env)

    def _answers(self, n: SimNode) -> bool:
        try:
            n.api("/info")
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def expected_channels(self) -> set[frozenset[str]]:
        """Pairs of nodes that get a channel: same feeder point, or points joined by a line,
        and the rebalancing pairs (gateway/grid/topology.py `neighbours`)."""
        if self._expected is None:
            topo = self.grid.topology
            joined = {frozenset((ln.from_bus, ln.to_bus)) for ln in topo.lines}
            names = list(self.nodes)
            out = {frozenset(pair) for pair in self.grid.rebalance}
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    ba, bb = topo.bus_of(a), topo.bus_of(b)
                    if ba == bb or frozenset((ba, bb)) in joined:
                        out.add(frozenset((a, b)))
            self._expected = out
        return set(self._expected)

    def open_channels(
        self, tolerant: bool = False, nodes: Iterable[SimNode] | None = None
    ) -> dict[frozenset[str], dict[str, Any]]:
        """The open channels as their ends list them (every node asked at once, or `nodes`);
        `tolerant`: a node that does not answer (yet: a loaded machine) lists none, instead of
        raising its NodeTimeout."""
        by_id = {n.node_id: n.name for n in self.nodes.values()}
        out = {}
        for name, listed in self.ask_all("/channels", nodes).items():
            if isinstance(listed, Exception):
                if not tolerant:
                    raise listed
                continue  # slow or down: judged by the caller's deadline
            for ch in listed:
                self.channel_ids.add(str(ch["channel_id"]))
                if ch["state"] == "OPEN" and ch["peer"] in by_id:
                    out[frozenset((name, by_id[ch["peer"]]))] = ch
        return out

    def wait_channels(self, timeout: float = 180.0) -> None:
        """Until every channel the topology asks for is open at both ends; the nodes whose
        channels are all open are not asked again. Else: which channels are missing."""
        want = self.expected_channels()
        seen: set[frozenset[str]] = set()
        deadline = time.monotonic() + timeout
        while True:
            pending = {name for pair in want - seen for name in pair}
            ask = [n for n in self.nodes.values() if n.name in pending]
            seen |= set(self.open_channels(tolerant=True, nodes=ask)) & want
            if want <= seen:
                self.channels_up = len(want)
                return
            if time.monotonic() > deadline:
                missing = sorted("-".join(sorted(p)) for p in want - seen)
                raise SimError(f"channels not open within {timeout:g} s: {', '.join(missing[:6])}"
                               + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))  # fmt: skip
            time.sleep(0.2)

    @staticmethod
    def _wait(pred: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.2)
        raise SimError(f"timed out waiting for {what}")

    # --- tear-down -------------------------------------------------------------------------------

    def stop_boards(self) -> None:
        """Stop every meter, all at once (the grid's other processes run on; `stop` then finds
        them stopped)."""
        boards = [n.board for n in self.nodes.values() if n.board is not None and n.board.alive()]
        if boards:
            with ThreadPoolExecutor(min(ASK_WORKERS, len(boards)), thread_name_prefix="stop") as ex:
                list(ex.map(lambda b: b.stop(), boards))

    def stop(self) -> None:
        for n in self.nodes.values():
            if n.board is not None:
                n.board.stop()
            if n.gateway is not None:
                n.gateway.close()
            if n.chip is not None:
                n.chip.stop()
            if n.wire is not None:
                n.wire.close()
        for proc in self.ledger_procs:
            procs.stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        if self.etcd is not None:
            self.etcd.stop()
        self.pod_meter.stop()
        self.proxies.close()
        self.broker.stop()


def close_client(client: Any) -> None:
    """Close a LedgerClient's pooled connections (this thread's)."""
    for url in client.urls:
        client._drop(url)


def _ca_on_flash(flash: Path, ca: Path) -> str:
    """The broker's CA goes onto the meter's flash, as provisioning puts it there."""
    (flash / "ca.pem").write_bytes(ca.read_bytes())
    return "ca.pem"
