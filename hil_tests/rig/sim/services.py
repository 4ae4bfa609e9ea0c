"""The grid's shared services: one mosquitto with the production config (deploy/mosquitto/),
and the ledger (one node, or three replicas on a real 3-member etcd cluster).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

from gateway.ledger.keys import SigningKey
from hil_tests import REPO_ROOT
from hil_tests.rig import procs
from hil_tests.rig.certs import write_ca_and_server
from hil_tests.rig.sim.node import SGRID, SimError

if TYPE_CHECKING:
    from hil_tests.rig.sim.grid import SimGrid


DEPLOY = REPO_ROOT / "deploy" / "mosquitto"


def start_broker(sg: SimGrid) -> None:
    write_ca_and_server(sg.broker_dir)
    text = (DEPLOY / "seamless-grid.conf").read_text()
    text = text.replace("/etc/mosquitto/sgrid/", f"{sg.broker_dir}/")
    text = text.replace("listener 8883\n", f"listener {sg.broker.port} 127.0.0.1\n")
    # started as root, mosquitto would drop to user "mosquitto", who cannot read the workdir
    sg.broker.conf = text + (
        f"user root\npersistence false\nmax_queued_messages 100000\n"
        f"log_dest file {sg.broker.log_path}\nlog_type error\nlog_type warning\n"
    )


def start_ledger(sg: SimGrid) -> None:
    validator = SigningKey(os.urandom(32))
    replicas = 1
    replication = ""
    if sg.ledger == "etcd":  # docs/ledger.md, "Replicated mode": one log, three replicas
        from hil_tests.gateway.ledger.etcd_cluster import start_cluster

        sg.etcd = start_cluster(sg.workdir / "etcd")
        replicas = 3
        endpoints = ", ".join(f'"{e}"' for e in sg.etcd.endpoints)
        replication = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 20\n"
    genesis_ms = int(time.time() * 1000)  # one for every replica: they build one genesis
    for i in range(replicas):
        d = sg.workdir / f"ledger-{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "validator.key").write_text(validator.secret_hex())
        cfg = d / "ledger.toml"
        cfg.write_text(
            f'[ledger]\nname = "sim-grid"\noperator = "{sg.operator.pubkey}"\n'
            f'validator_key_file = "validator.key"\ngenesis_time_ms = {genesis_ms}\n'
            f'db = "ledger.sqlite"\nlisten = "127.0.0.1:0"\nidle_block_ms = 200\n'
            f"commit_timeout_s = 30\n{replication}"
        )
        with open(d / "ledger.log", "w") as log:
            proc = procs.spawn([*SGRID, "ledger", "run", "--config", str(cfg)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=log, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        sg.ledger_procs.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "listening" in line:
                sg.ledger_urls.append(line.split("listening", 1)[1].strip())
                break
            if proc.poll() is not None:
                raise SimError(f"the ledger did not start: see {d / 'ledger.log'}")
        else:
            raise SimError("the ledger did not start within 60 s")
