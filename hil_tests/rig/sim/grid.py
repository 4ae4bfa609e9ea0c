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
from hil_tests.gateway.gateway_proc import GatewayProcess
from hil_tests.rig import procs
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.broker import Broker, free_port
from hil_tests.rig.flash_reader import pubkey_from_console
from hil_tests.rig.microgrid import Microgrid
from hil_tests.rig.pod_meter import EmulatedSdm630
from hil_tests.rig.polling import wait_until
from hil_tests.rig.sim import enrolment, node_config, services
from hil_tests.rig.sim.node import (
    ASK_WORKERS,
    NodeTimeout,
    SimError,
    SimNode,
    api_timeout_s,
    close_client,
    in_process,
)
from hil_tests.rig.sim.node_config import CHANNEL_MSAT, IDLE_FLOOR_MS
from hil_tests.rig.tcp_proxy import RelayBank
from hil_tests.rig.wire import PtyWire
from tools.build import build

DEPOSIT_MSAT = 2_000_000_000  # per node: 2,000 sat (about 10 kWh at the tariff)


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
        services.start_broker(self)
        services.start_ledger(self)
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
        enrolment.enroll_all(self)
        self.broker.start()
        self._make_relays()
        for n in self.nodes.values():
            n.config.write_text(
                node_config.gateway_toml(self, n, node_config.topology_toml(self, n))
            )
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

    def _prepare(self, n: SimNode) -> None:
        n.dir.mkdir(parents=True, exist_ok=True)
        n.config.write_text(node_config.gateway_toml(self, n, ""))
        n.node_id = in_process("gateway", "node-id", "--config", str(n.config)).strip()
        # the site key the meter verifies acks and tokens with (created on first use)
        n.site_key = in_process("gateway", "site-key", "--config", str(n.config)).strip()

    def _boot_meter(self, n: SimNode, rom: Path, first: bool) -> None:
        flash = n.dir / "meter" / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        cfg = node_config.meter_config(self, n, flash, first)
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

    def _make_relays(self) -> None:
        for pair in self.expected_channels():
            a, b = sorted(pair)
            self.proxies.add(a, b, self.nodes[b].port)
            self.proxies.add(b, a, self.nodes[a].port)

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
        return wait_until(pred, timeout, what, every=0.2, error=SimError)

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
            n.close_api()
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
