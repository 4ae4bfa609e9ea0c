"""`python -m gateway.service ...` == `sgrid -v gateway ...` (used where the full CLI is not needed)."""

import logging

from gateway.service.cli import gateway

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
gateway(prog_name="sgrid gateway")
