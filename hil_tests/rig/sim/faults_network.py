"""Faults of the network and the processes: the broker restarted, a gateway SIGKILLed, a
household cut off from its peers, the POD's gateway down for an hour.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil_tests.rig.sim.scenarios import Faults


def broker_restart(faults: Faults) -> None:
    def restart() -> None:
        faults.sg.broker.stop()
        time.sleep(2.0)
        faults.sg.broker.start()

    faults.add(0.4, "fault: mosquitto stopped (restarts in 2 s)", restart)


def gateway_kill(faults: Faults) -> None:
    n = faults.victim()

    def kill() -> None:
        assert n.gateway is not None
        n.gateway.kill()
        n.gateway.close()
        time.sleep(1.0)
        faults.sg.start_gateway(n)

    faults.add(0.45, f"fault: {n.name}'s gateway SIGKILLed (restarted)", kill)


def partition(faults: Faults) -> None:
    """The household loses the wires to its channel peers (the relays of the bench are cut)
    for an hour; its meter and the broker stay reachable. While cut off no payment can move
    its channels; none of them is closed over it; once healed it buys again."""
    n = faults.victim()
    span_h = (faults.t_end - faults.t_begin) / 3600
    hour = min(0.5, 1 / max(1.0, span_h))
    seen: dict[str, Any] = {}

    def local() -> dict[str, int]:
        return {c["channel_id"]: int(c["local_msat"]) for c in n.api("/channels")}

    def cut() -> None:
        faults.sg.proxies.isolate(n.name, True)
        time.sleep(0.5)  # a payment whose last message was on the wire settles or stops
        seen["at_cut"] = local()
        seen["t_cut"] = faults.sg.clock.now()

    def heal() -> None:
        seen["before_heal"] = local()
        seen["t_heal"] = faults.sg.clock.now()
        faults.sg.proxies.isolate(n.name, False)

    def judged() -> dict[str, Any]:
        from hil_tests.rig.sim import collect

        moved = sum(abs(seen["before_heal"].get(cid, 0) - v)
                    for cid, v in seen.get("at_cut", {}).items())  # fmt: skip
        mine = [c for c in collect.channels(faults.sg) if n.name in c.get("ends", {})]
        open_both = all(len(c["ends"]) == 2 and all(e["state"] == "OPEN"
                        for e in c["ends"].values()) for c in mine)  # fmt: skip
        t_heal = seen.get("t_heal", float("inf"))
        bought_after = sum(int(c["wh"]) for c in collect.credit(n)
                           if c["status"] == "accepted" and c["created_at"] >= t_heal)  # fmt: skip
        return {"holds": "at_cut" in seen and "before_heal" in seen and moved == 0
                and bool(mine) and open_both and bought_after > 0, "node": n.name,
                "cut_off_virtual_s": round(t_heal - seen.get("t_cut", t_heal)),
                "moved_while_cut_msat": moved, "channels": len(mine),
                "all_open_both_ends": open_both, "bought_after_heal_wh": bought_after}  # fmt: skip

    faults.add(0.3, f"fault: {n.name} loses its peers (for an hour)", cut)
    faults.add(0.3 + hour, f"fault healed: {n.name} reaches its peers again", heal)
    faults.checks["partition"] = judged


def pod_outage(faults: Faults) -> None:
    pod = faults.sg.nodes["pod"]
    span_h = (faults.t_end - faults.t_begin) / 3600
    hour = min(0.5, 1 / max(1.0, span_h))

    def down() -> None:
        assert pod.gateway is not None
        pod.gateway.terminate()
        pod.gateway.close()

    def up() -> None:
        faults.sg.start_gateway(pod)

    faults.add(0.35, "fault: the POD's gateway goes down (for an hour)", down)
    faults.add(0.35 + hour, "fault healed: the POD's gateway is back", up)
