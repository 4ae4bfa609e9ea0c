"""BOLT codecs (no I/O above the transport): bech32, BOLT #3 secrets and keys, BOLT #8
handshake and transport, BOLT #11 invoices and their energy receipts, BOLT #1 wire messages.
The bottom layer of gateway.ln: imports nothing from the package above it (only errors)."""
