"""The ledger node: a permissioned, hash-chained ledger (embedded on SQLite, or replicated on etcd).

Layers, each in its own module:
    canonical, keys, merkle     encodings and cryptography (pure)
    txs                         transaction bodies: building, signing, shape checks (pure)
    rules, state                applying a transaction to the ledger state (pure)
    blocks                      block headers, hashing, signing, chain checks (pure)
    store                       SQLite storage (WAL, one transaction per block)
    node                        the embedded block producer
    replicated, etcd            the replicated mode: the ordered log lives in etcd
    api, client                 the HTTP JSON API and the urllib client gateways use
    verify, proofs, cli         whole-chain verification, offline proofs, the `sgrid ledger` group

The wire format is specified in docs/ledger-api.md.
"""
