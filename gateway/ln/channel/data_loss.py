"""Data-loss protection on reconnection (after BOLT #2 `option_data_loss_protect`), pure.

A node restored from an old backup holds a commitment it has since revoked: publishing it would
hand the whole channel to the peer (the penalty). Each side's `sg_reestablish` says how far it
holds the *other* side's revocation secrets and carries the last of them, so on reconnection:

* **we are behind** when the peer holds the secret of our newest commitment (we revoked it, so a
  newer state exists that we lost). The secret must be ours: we derive every one of our secrets
  from the channel's seed, so an old backup can check it, and a lying peer cannot stop us from
  closing with a state that is good. Behind, the node never publishes its state and asks the peer
  to close (docs/channels.md, "Data-loss protection").
* **the peer is behind** when we hold the secret of the peer's newest commitment: it lost state.
  We publish our newest (good) state, which pays the peer its true balance.

Both conditions are impossible between nodes that persist before they send (every secret leaves
only after the newer state is committed), so neither fires on an ordinary reconnection.
"""

from __future__ import annotations

from gateway.ln.channel.core import ChannelCore
from gateway.ln.channel.messages import Reestablish
from gateway.ln.errors import ProtocolViolation


def we_are_behind(ch: ChannelCore, msg: Reestablish) -> bool:
    """True if the peer proves it holds the secret of our newest commitment; ProtocolViolation
    if it claims so with a secret that is not ours."""
    if msg.revoked_through < ch.latest.number:
        return False
    if msg.last_secret != ch.local_secret(msg.revoked_through):
        raise ProtocolViolation(
            f"the peer says we revoked commitment {msg.revoked_through} (ours is "
            f"{ch.latest.number}) but its secret for it is not ours"
        )
    return True


def peer_is_behind(ch: ChannelCore, msg: Reestablish) -> bool:
    """True if the peer's newest commitment is one it revoked (we hold its secret)."""
    return 0 <= msg.latest <= ch.remote_revoked_through


def mark_behind(ch: ChannelCore, msg: Reestablish) -> None:
    """Record on `ch` that the peer's reestablish `msg` proved our state stale (`extra
    ["behind"]`, stored with the channel): from then on it is never published nor superseded."""
    ch.extra["behind"] = {"peer_latest": msg.latest, "peer_revoked_through": msg.revoked_through}
