"""The local energy market: a pure, deterministic engine (docs/market.md).

Clearing (`mechanisms`), coalition, slots, feeder check and settlement do no I/O; the agent API
for a node is `gateway.market.agent`; `sgrid market` is `gateway.market.cli`.
"""
