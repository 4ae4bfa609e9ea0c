"""The grid node: a gateway as a Seamless Grid node (seed 000 §IV, docs/gateway.md)."""
