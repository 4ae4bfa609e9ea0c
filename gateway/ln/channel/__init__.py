"""The pure channel state machine (no I/O): commitments, HTLC updates, channel states and the
messages they exchange, and the ledger transactions a channel signs. Above the codecs only."""
