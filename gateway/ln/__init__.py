"""Lightning-style payment channels for the Seamless Grid gateways, in layers (each imports only
the layers below it; the import-linter contract in pyproject.toml holds them):

  cli      -- `sgrid channel`, `sgrid pay`, `sgrid invoice`
  node     -- the channel node process: peers, switch, router, store, ledger adapters, control API
  channel  -- the pure channel state machine: commitments, HTLCs, states, messages, ledger bodies
  codec    -- BOLT codecs: bech32, bolt3, bolt8, bolt11 (+ energy receipts), wire
  errors   -- the package's exception tree (LnError, under gateway.errors.GatewayError)
"""
