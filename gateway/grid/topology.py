"""Channels from the electrical topology (seed 000: the channel graph overlays the feeder).

Every node hangs off a feeder point (`bus`). Two nodes are electrical neighbours when they hang
off the same point or off two points joined by a `[[topology.line]]`; `[[topology.rebalance]]`
pairs get a channel too. Of each pair, the node with the smaller node id connects and opens the
channel (funding `node.channel_msat`), so both ends of a shared topology agree without talking.
Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config_grid import TopologyConfig, TopologyNode


@dataclass(frozen=True)
class Link:
    peer: TopologyNode
    kind: str  # "feeder" (electrical neighbour) or "rebalance"
    we_open: bool


def neighbours(topo: TopologyConfig, me: str) -> list[Link]:
    """The channels node `me` should have, each once, electrical neighbours first."""
    mine = topo.node(me)
    if mine is None:
        return []
    joined = {mine.bus}
    for a, b in topo.lines:
        if mine.bus == a:
            joined.add(b)
        elif mine.bus == b:
            joined.add(a)
    links: dict[str, Link] = {}
    for n in topo.nodes:
        if n.name != me and n.bus in joined:
            links[n.name] = Link(n, "feeder", mine.node_id < n.node_id)
    for a, b in topo.rebalance:
        other = b if a == me else a if b == me else None
        peer = topo.node(other) if other else None
        if peer is not None and peer.name not in links and peer.name != me:
            links[peer.name] = Link(peer, "rebalance", mine.node_id < peer.node_id)
    return list(links.values())


def path_to(topo: TopologyConfig, me: str, target: str) -> list[str]:
    """Node names from `me` to `target` over the channel graph (breadth first; [] if none)."""
    frontier, seen = [[me]], {me}
    while frontier:
        path = frontier.pop(0)
        if path[-1] == target:
            return path
        for link in neighbours(topo, path[-1]):
            if link.peer.name not in seen:
                seen.add(link.peer.name)
                frontier.append([*path, link.peer.name])
    return []
