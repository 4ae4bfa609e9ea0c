"""What the operator and the installers do for every node (docs/gateway.md, "Bringing a node
in"): ledger enrolment and deposits, the broker's accounts, the gateway's meter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hil_tests.rig.sim.node import SimError, SimNode, close_client
from hil_tests.rig.sim.node_config import ROLES

if TYPE_CHECKING:
    from hil_tests.rig.sim.grid import SimGrid


def enroll_all(sg: SimGrid) -> None:
    """What the operator and the installers do for every node (docs/gateway.md, "Bringing a
    node in"): the same library calls as `sgrid ledger enroll/deposit/enroll-meter`, `sgrid
    broker add-gateway/add-meter` and `sgrid gateway enroll-meter`, in-process so that 50
    nodes come up in seconds rather than minutes of interpreter start-ups; the ledger
    transactions in two batches (participants first: deposits and meters name them)."""
    from gateway.ledger import txs
    from gateway.ledger.client import LedgerClient

    client = LedgerClient(sg.ledger_urls, retries=3)
    chain = str(client.info()["chain"])
    nodes = list(sg.nodes.values())

    def tx(kind: str, **fields: Any) -> Any:
        return txs.make(kind, chain, **fields).signed_by(sg.operator)

    first = [tx("enroll_participant", participant=n.node_id, name=n.name,
                role=ROLES[n.spec.kind]) for n in nodes]  # fmt: skip
    second = [tx("deposit", account=n.node_id, amount_msat=sg.deposit_msat(n.name),
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
        enroll_locally(sg, n)


def enroll_locally(sg: SimGrid, n: SimNode) -> None:
    from gateway.config import load_config
    from gateway.ingest.store import ReadingStore
    from gateway.mqtt import accounts

    cfg = load_config(n.config)
    secret = n.dir / "gw.secret"
    password = accounts.new_password()
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    with sg._accounts_lock:  # one passwd and one acl file for the whole broker
        accounts.add_password(sg.broker_dir / "passwd", f"gw-{n.name}", password)
        accounts.write_acl(sg.broker_dir / "acl", accounts.gateway_acl(n.name, f"gw-{n.name}"))
    if not n.meter_pubkey:
        return
    store = ReadingStore(cfg.database)
    try:
        store.enroll(n.meter_pubkey, n.name, 0)
    finally:
        store.close()
    n.broker_password = accounts.new_password()
    with sg._accounts_lock:
        accounts.add_password(sg.broker_dir / "passwd", n.meter_hex, n.broker_password)
        accounts.write_acl(sg.broker_dir / "acl", accounts.meter_acl(n.name, n.meter_hex))
