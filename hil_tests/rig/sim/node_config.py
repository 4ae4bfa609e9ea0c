"""What each node is configured with: its gateway's TOML (with the operator's [topology] as
the node sees it), its meter's config.json, and the link timeouts at the clock's speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil_tests.rig.sim.node import SimNode

if TYPE_CHECKING:
    from hil_tests.rig.sim.grid import SimGrid


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


def link_timeouts(speed: float) -> dict[str, int]:
    """Meter config for a board at `speed`: its ticks are virtual, the gateway and the broker
    answer in real time. The journal is republished after 20 real seconds without an ack (60
    virtual seconds are 125 ms at 480x: a loaded machine republished all day), a PINGREQ after
    30 real seconds idle."""
    return {"ack_timeout_s": min(86_400, max(60, round(20 * speed))),
            "mqtt_keepalive_s": min(65535, max(60, round(30 * speed)))}  # fmt: skip


def meter_config(sg: SimGrid, n: SimNode, flash: Path, first: bool) -> dict[str, Any]:
    """A meter's config.json: for its first boot (its keys), or for its second one, with the
    gateway's site key, its broker account and the broker's CA (copied onto its flash)."""
    cfg: dict[str, Any] = {
        "site": n.name,
        "broker_host": "localhost",
        "broker_port": sg.broker.port,
        "interval_s": sg.interval_s,
        "checkpoint_s": CHECKPOINT_S,
        **link_timeouts(sg.speed),  # ack timeout and keepalive in real seconds
        "min_switch_s": 0,
        "meter_source": n.spec.meter_source,
        "critical_load": n.spec.kind in ("critical", "pv", "battery"),
        # the broker's patience in the meter's (virtual) clock: 10 real seconds
        "mqtt_timeout_s": min(86_400, max(10, int(10 * sg.speed))),
    }
    if not first:
        cfg.update(
            issuer_pubkey=n.site_key,
            broker_user=n.meter_hex,
            broker_password=n.broker_password,
            broker_tls_ca=_ca_on_flash(flash, sg.broker_dir / "ca.pem"),
        )
    return cfg


def gateway_toml(sg: SimGrid, n: SimNode, topology: str) -> str:
    """A node's gateway.toml; `topology`: its [topology] lines (none before every node id is
    known: its market starts with them)."""
    meter = f'meter = "{n.name}"\n' if n.spec.kind != "pod" else ""
    modbus = ""
    if n.spec.kind == "pod":
        modbus = (
            f'[[modbus.bus]]\nname = "grid"\nkind = "rtu"\nport = "{sg.pod_meter.port}"\n'
            f"baudrate = {sg.pod_meter.baudrate}\ntimeout_s = 0.5\n"
            '[[modbus.device]]\nname = "pod"\nbus = "grid"\nmodel = "sdm630"\npoll_s = 2.0\n'
        )
    market = sg.node_market.get(n.name, "")
    return (
        f'[gateway]\nsite = "{n.name}"\nstate_dir = "state"\n'
        f'[mqtt]\nhost = "localhost"\nport = {sg.broker.port}\n'
        f'username = "gw-{n.name}"\npassword_file = "gw.secret"\n'
        f'tls_ca_file = "{sg.broker_dir / "ca.pem"}"\n'
        f"[ingest]\nresend_cooldown_s = 0.5\n"
        f'[metrics]\nlisten = "127.0.0.1"\nport = {n.metrics_port}\n'
        f"[homeassistant]\nenabled = false\n"
        f'[node]\nenabled = true\nname = "{n.name}"\nlisten = "127.0.0.1"\nport = {n.port}\n'
        f"control_port = {n.control_port}\nchannel_msat = {CHANNEL_MSAT}\n"
        f"accept_max_msat = {CHANNEL_MSAT}\ntick_s = 0.1\ncltv_delta = {sg.cltv_delta}\n"
        f"{meter}"
        f'[ledger]\nurl = "{sg.ledger_url}"\n'
        f"[credit]\nresend_s = 1.0\n"
        f"[anchor]\ninterval_s = {sg.anchor_interval_s:g}\nretry_s = 2.0\n"
        f'[market]\nrole = "{ROLES[n.spec.kind]}"\n{market if topology else ""}' + modbus + topology
    )


def topology_toml(sg: SimGrid, me: SimNode) -> str:
    """The operator's [topology], as `me` sees it: its neighbours behind the bench's relays."""
    topo = sg.grid.topology
    out = ""
    for n in sg.nodes.values():
        port = n.port if n is me else (sg.proxies.port(me.name, n.name) or n.port)
        out += (
            f'[[topology.node]]\nname = "{n.name}"\nbus = "{topo.bus_of(n.name)}"\n'
            f'node_id = "{n.node_id}"\nhost = "127.0.0.1"\nport = {port}\n'
        )
    for line in topo.lines:
        out += f'[[topology.line]]\na = "{line.from_bus}"\nb = "{line.to_bus}"\n'
    for a, b in sg.grid.rebalance:  # the hubs' channels to the POD (microgrid.py)
        out += f'[[topology.rebalance]]\na = "{a}"\nb = "{b}"\n'
    return out


def _ca_on_flash(flash: Path, ca: Path) -> str:
    """The broker's CA goes onto the meter's flash, as provisioning puts it there."""
    (flash / "ca.pem").write_bytes(ca.read_bytes())
    return "ca.pem"
