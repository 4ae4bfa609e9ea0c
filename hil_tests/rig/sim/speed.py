"""How fast `sgrid sim` runs its clock when no speed is given: a cost model of a node (cores)
measured on this machine, and the share of the machine the nodes may ask."""

from __future__ import annotations

import os

from hil_tests.rig.sim.node_config import IDLE_FLOOR_MS

# What a node costs (cores), measured with `sgrid sim` on this machine: its board's idle steps,
# BOARD_WAKE_CORES per wake-up a second (a board wakes once per idle floor, grid.IDLE_FLOOR_MS per
# 10 boards), its gateway's own loops, NODE_FIXED_CORES, and what comes per virtual time and so
# scales with the speed (the board's signatures, acks, tokens and checkpoints, the gateway's
# market rounds and payments): CORES_PER_SPEED per x. The default grid at 720x (boards/emulated
# since its host-call and GC work): 161 CPU-s for its 9 boards and 42 for its 10 gateways over a
# 165 s run, ~0.13 and ~0.028 cores each; an idle board at 480x, 0.022 cores with its readings
# (its 20 ms idle floor; 40 ms saved nothing measurable); gateways at 180x: 0.016 cores each.
BOARD_WAKE_CORES = 0.0004
NODE_FIXED_CORES = 0.012
CORES_PER_SPEED = 0.0002
MAX_AUTO_SPEED = 720.0
# the default grid (9 boards) at 720x asks this many cores per core of the machine: its full day
# in about 3 minutes, every invariant holding, with headroom on a loaded machine
DEMAND_PER_CORE = 0.85
# ... but a bigger grid's gateways forward each other's payments (up to 6 hops at 56 nodes), and
# a payment waits for a core at every hop: beyond the default grid the nodes are left less,
# down to BIG_GRID_DEMAND_PER_CORE from BIG_GRID_BOARDS boards on. `--homes 50` (55 boards) at
# 75x (its boards then asking 1.25 per core): 7 of 51 prepaid loads served, payments 10-30 real
# s; at 30x: 241 of 244 payments succeeded, most households served
BIG_GRID_DEMAND_PER_CORE = 0.6
BIG_GRID_BOARDS = 24


def demand_per_core(boards: int) -> float:
    """The cores per core of the machine the nodes may ask (see DEMAND_PER_CORE): 0.85 up to
    the default grid's 9 boards, falling linearly to 0.6 at 24 boards and beyond."""
    over = min(1.0, max(0.0, (boards - 9) / (BIG_GRID_BOARDS - 9)))
    return DEMAND_PER_CORE - (DEMAND_PER_CORE - BIG_GRID_DEMAND_PER_CORE) * over


def board_cores(boards: int, speed: float) -> float:
    """What one of `boards` emulated meters and its gateway cost at `speed` (cores; the model
    above)."""
    wakes = 1000 / (IDLE_FLOOR_MS * max(1.0, boards / 10))
    return BOARD_WAKE_CORES * wakes + NODE_FIXED_CORES + CORES_PER_SPEED * speed


def auto_speed(boards: int, cores: int | None = None) -> float:
    """The clock's speed for `boards` emulated meters when none is given: 720x, or less, so that
    the nodes ask no more of the machine than the default grid does at 720x, and less on a
    bigger grid (demand_per_core; beyond it a meter's reaction, a token's path and a payment's
    hops stretch into virtual minutes). On 2 cores: 720x up to 9 boards (the default grid),
    145x for 24, 40x for 49 (bench_sim's 50 nodes), 30x for 55 (`--homes 50`); a multiple of 5,
    at least 5."""
    boards = max(1, boards)
    budget = demand_per_core(boards) * (cores or os.cpu_count() or 1) / boards
    fits = (budget - board_cores(boards, 0.0)) / CORES_PER_SPEED
    return float(max(5, min(MAX_AUTO_SPEED, int(fits) // 5 * 5)))
