"""Lightning-style codecs and transport for the Seamless Grid gateways.

Modules (one job each):
  errors   -- the package's exception tree (LnError and its children)
  bolt3    -- per-commitment secrets (generation, compact storage) and key derivation
  bech32   -- bech32 strings and 5-bit/8-bit regrouping
  bolt11   -- BOLT #11 invoices (encode, decode, signature check)
  receipt  -- energy receipts: the seed-000 memo carried by an invoice
  wire     -- BOLT #1 typed messages, described as data (a message table)
  bolt8    -- BOLT #8 Noise_XK handshake, encrypted framing, asyncio transport
"""
