"""The channel node: peers, the HTLC switch and router, the store, the ledger adapters and the
control API. Above the channel state machine (`gateway.ln.channel`) and the codecs."""
