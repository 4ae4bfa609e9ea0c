"""`sgrid sim`: the simulated microgrid on the HIL bench (see hil_tests/rig/sim/cli.py)."""

from hil_tests.rig.sim.legacy import sim

__all__ = ["sim"]
