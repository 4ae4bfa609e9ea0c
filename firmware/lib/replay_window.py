# Which credit-token ids a meter has redeemed: a floor and a small bitmap above it (pure).
#
# Every id <= floor is spent (redeemed, or given up: see below); bit i of `seen` says whether
# id floor + 1 + i was redeemed. Tokens may therefore arrive in any order: an id below the
# newest accepted one is still redeemable as long as it is within WINDOW ids of it. The floor
# moves up over a run of redeemed ids, and when a token more than WINDOW ids above the floor is
# accepted (the issuer had more than WINDOW tokens outstanding for this meter) the floor jumps
# so that the window holds it: the ids it passes can no longer be redeemed (docs/credit-tokens.md).
# Both numbers are written to flash with the credit state before a token takes effect.

from sgcore.compat import const

WINDOW = const(64)


def is_spent(floor, seen, token_id):
    """True when token_id was redeemed already (or lies below the floor)."""
    if token_id <= floor:
        return True
    i = token_id - floor - 1
    return i < WINDOW and (seen >> i) & 1 == 1


def accept(floor, seen, token_id):
    """(floor, seen) after redeeming token_id, which must not be spent."""
    if token_id > floor + WINDOW:
        shift = token_id - WINDOW - floor
        seen = seen >> shift if shift < WINDOW else 0
        floor += shift
    seen |= 1 << (token_id - floor - 1)
    while seen & 1:
        seen >>= 1
        floor += 1
    return floor, seen


def newest(floor, seen):
    """The highest id redeemed (floor when the bitmap is empty)."""
    n = 0
    while seen:
        seen >>= 1
        n += 1
    return floor + n
