"""``python -m gateway.ln.node``: run the channel node (see main.py)."""

from gateway.ln.node.main import main

main()
