"""A real three-member etcd cluster on loopback ports (Debian package `etcd-server`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hil_tests.rig import procs
from hil_tests.rig.ports import free_port

ETCD = shutil.which("etcd")


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


@dataclass
class EtcdCluster:
    root: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _cluster_arg(self) -> str:
        return ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)

    def start_member(self, member: Member, state: str) -> None:
        assert ETCD is not None
        member.proc = procs.spawn(  # its own process group, never outliving the rig
            [
                ETCD,
                "--name",
                member.name,
                "--data-dir",
                str(member.data_dir),
                "--listen-client-urls",
                member.endpoint,
                "--advertise-client-urls",
                member.endpoint,
                "--listen-peer-urls",
                f"http://127.0.0.1:{member.peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{member.peer_port}",
                "--initial-cluster",
                self._cluster_arg(),
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "sgrid-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--logger",
                "zap",
                "--log-outputs",
                str(member.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self, index: int) -> None:
        proc = self.members[index].proc
        assert proc is not None
        procs.kill(proc)

    def restart(self, index: int) -> None:
        self.start_member(self.members[index], "existing")

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for member in self.members:
            while True:
                try:
                    with urllib.request.urlopen(member.endpoint + "/health", timeout=2) as r:
                        if b'"true"' in r.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {member.name} not healthy; see {member.log}")
                time.sleep(0.1)

    def leader_index(self) -> int:
        """Which member currently leads the Raft cluster (asked through /v3/maintenance/status)."""
        for i, member in enumerate(self.members):
            try:
                request = urllib.request.Request(
                    member.endpoint + "/v3/maintenance/status", data=b"{}"
                )
                with urllib.request.urlopen(request, timeout=2) as r:
                    status = json.loads(r.read())
            except OSError:
                continue
            if status.get("leader") == status["header"]["member_id"]:
                return i
        raise RuntimeError("no etcd leader")

    def stop(self) -> None:
        for member in self.members:
            procs.kill(member.proc)


def start_cluster(root: Path, size: int = 3) -> EtcdCluster:
    root.mkdir(parents=True, exist_ok=True)
    cluster = EtcdCluster(root)
    for i in range(size):
        cluster.members.append(
            Member(f"m{i}", free_port(), free_port(), root / f"m{i}", root / f"m{i}.log")
        )
    for member in cluster.members:
        cluster.start_member(member, "new")
    try:
        cluster.wait_healthy()
    except RuntimeError:
        cluster.stop()
        raise
    return cluster
