"""Where a 2-hop payment's milliseconds go: the critical path through the nodes' timelines.

Each node keeps timing marks (`gateway/ln/node/timeline.py`, `--timeline N`, `GET /timeline`):
on one host their clock (CLOCK_MONOTONIC) is shared, so the marks of the three nodes merge.
The critical path of one payment is walked backwards from the payer's answer (`api_done`): a
mark's cause is the node's previous mark, except a ``read`` (the node woke up to bytes from a
peer), whose cause is the peer's last ``send`` to it before. Each step of that path is named
by its two marks, so the sum of the steps is the payment's latency in the payer node.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# what the time between two consecutive marks of one node is spent on
_STEP = {
    ("read", "recv"): "decrypt+decode",
    ("recv", "handled"): "handle {msg}",
    ("handled", "recv"): "decode next in burst",
    ("handled", "react"): "switch+propose (sign)",
    ("react", "commit"): "flush: build",
    ("commit", "committed"): "store commit (fsync)",
    ("committed", "send"): "flush: take outbox",
    ("send", "send"): "encrypt+write (other peer)",
    ("committed", "paid"): "wake payer",
    ("react", "paid"): "wake payer",
    ("paid", "api_done"): "answer",
    ("api", "react"): "decode invoice, route, propose (sign)",  # = PROPOSE
}


@dataclass(frozen=True)
class Mark:
    node: str
    t_ns: int
    what: str
    detail: str


@dataclass(frozen=True)
class Step:
    node: str  # "a->b" for the wire between two nodes
    start_ns: int
    end_ns: int
    label: str

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def merge(marks: dict[str, list[dict[str, Any]]]) -> dict[str, list[Mark]]:
    return {
        name: [Mark(name, m["t_ns"], m["what"], m["detail"]) for m in ms]
        for name, ms in marks.items()
    }


def _sender(detail: str, shorts: dict[str, str]) -> str | None:
    """The node named by a ``read``/``send`` detail ("3 from 02ab..")."""
    return shorts.get(detail.rsplit(" ", 1)[-1])


def critical_path(
    nodes: dict[str, list[Mark]], shorts: dict[str, str], payer: str, t0: int, t1: int
) -> list[Step]:
    """The steps of the payment answered by the payer's last `api_done` in [t0, t1], in time
    order; `shorts` maps each node's 12-hex-digit id to its name."""
    index = {name: {id(m): i for i, m in enumerate(ms)} for name, ms in nodes.items()}
    done = [m for m in nodes[payer] if m.what == "api_done" and t0 <= m.t_ns <= t1]
    if not done:
        return []
    steps: list[Step] = []
    cur = done[-1]
    while cur.what != "api":
        ms = nodes[cur.node]
        i = index[cur.node][id(cur)]
        if cur.what == "read":
            src = _sender(cur.detail, shorts)
            if src is None:
                break
            me = next(s for s, n in shorts.items() if n == cur.node)
            sends = [
                m
                for m in nodes[src]
                if m.what == "send" and m.detail.endswith(me) and m.t_ns <= cur.t_ns
            ]
            if not sends:
                break
            prev = sends[-1]
            steps.append(
                Step(f"{src}->{cur.node}", prev.t_ns, cur.t_ns, "encrypt, write, wake-up (wire)")
            )
        else:
            if i == 0:
                break
            prev = ms[i - 1]
            if cur.what == "recv":  # the node's peers are read by interleaved tasks
                peer = cur.detail.rsplit(" ", 1)[-1]
                prev = next(
                    (
                        m
                        for m in reversed(ms[:i])
                        if m.what in ("read", "handled") and m.detail.endswith(peer)
                    ),
                    prev,
                )
            label = _STEP.get((prev.what, cur.what), f"{prev.what} -> {cur.what}")
            if "{msg}" in label:
                label = label.format(msg=prev.detail.split(" ")[0])
            steps.append(Step(cur.node, prev.t_ns, cur.t_ns, label))
        cur = prev
        if cur.t_ns < t0:
            break
    steps.reverse()
    return _until_first_send(steps, payer, [m for m in nodes[payer] if m.what == "api"])


PROPOSE = "decode invoice, route, propose (sign)"
WAIT = "decode invoice, wait for the previous payment's last round, propose"


def _until_first_send(steps: list[Step], payer: str, apis: list[Mark]) -> list[Step]:
    """One step from the payer's `api` mark to its proposal of this payment: when the channel
    was still busy with the previous payment's last round (the peer's revoke), the path runs
    through that round's marks, and that wait is this payment's too."""
    if not steps:
        return steps
    t_api = max((m.t_ns for m in apis if m.t_ns <= steps[-1].end_ns), default=steps[0].start_ns)
    first = next(
        (
            i
            for i, s in enumerate(steps)
            if s.node == payer and s.label == "flush: build" and s.start_ns >= t_api
        ),
        None,
    )
    if first is None or first == 0:
        return steps
    label = PROPOSE if first == 1 and steps[0].label == PROPOSE else WAIT
    return [Step(payer, t_api, steps[first].start_ns, label), *steps[first:]]


def breakdown(paths: list[list[Step]]) -> list[tuple[str, float, float]]:
    """(category, mean ms per payment, share of the mean total) over the payments' paths; a
    category is a step's label (the wire and the commits summed over the nodes)."""
    sums: dict[str, float] = defaultdict(float)
    for path in paths:
        for s in path:
            sums[s.label] += s.ms
    total = sum(sums.values())
    n = max(len(paths), 1)
    rows = [(k, v / n, v / total if total else 0.0) for k, v in sums.items()]
    return sorted(rows, key=lambda r: -r[1])


def tail_excess(paths: list[list[Step]], tail: float = 0.01) -> list[tuple[str, float]]:
    """What the slowest `tail` of the payments (at least one) spend more on than the middle
    half: (a node's step, or the wire, and the mean ms more per payment), largest first."""
    order = sorted(range(len(paths)), key=lambda i: sum(s.ms for s in paths[i]))
    slow = order[-max(1, int(len(order) * tail)) :]
    middle = order[len(order) // 4 : max(len(order) // 4 + 1, 3 * len(order) // 4)]

    def mean(idx: list[int]) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for i in idx:
            for s in paths[i]:
                sums[s.label if "->" in s.node else f"{s.node}: {s.label}"] += s.ms
        return {k: v / len(idx) for k, v in sums.items()}

    hi, mid = mean(slow), mean(middle)
    rows = [(k, hi.get(k, 0.0) - mid.get(k, 0.0)) for k in hi.keys() | mid.keys()]
    return sorted(rows, key=lambda r: -r[1])


def format_path(path: list[Step]) -> str:
    """One line per step: start (ms from the payer's request), duration, node, what."""
    if not path:
        return "  (no path)"
    t0 = path[0].start_ns
    return "\n".join(
        f"  {(s.start_ns - t0) / 1e6:7.3f} ms  +{s.ms:6.3f}  {s.node:<12} {s.label}" for s in path
    )


def with_client(
    path: list[Step], payer: str, t0: int, t1: int, marks: list[Mark] | None = None
) -> list[Step]:
    """The path as the client saw it, sent at `t0` and answered at `t1`: plus its request's way
    to the payer's API and the answer's way back. With the payer's `marks`, the request is
    split where the API's connection handler started (a new connection only) and where it had
    read the request."""
    if not path or path[0].start_ns < t0 or path[-1].end_ns > t1:
        return path
    api = path[0].start_ns
    http = [m for m in marks or [] if m.what == "http" and t0 <= m.t_ns <= api]
    accepted = next((m.t_ns for m in http if m.detail == "accepted"), None)
    read = next((m.t_ns for m in http if m.detail == "read"), None)
    if read is not None and accepted is None:  # on a kept-alive connection: no connect
        request = [
            Step(
                f"client->{payer}", t0, read, "HTTP request on a kept connection (client to read)"
            ),
            Step(payer, read, api, "HTTP request checked, routed"),
        ]
    elif accepted is None or read is None or read < accepted:
        request = [Step(f"client->{payer}", t0, api, "HTTP request (client to API)")]
    else:
        request = [
            Step(f"client->{payer}", t0, accepted, "HTTP connect + accept (client to handler)"),
            Step(payer, accepted, read, "HTTP request read"),
            Step(payer, read, api, "HTTP request checked, routed"),
        ]
    return [
        *request,
        *path,
        Step(f"{payer}->client", path[-1].end_ns, t1, "HTTP answer (API to client)"),
    ]
