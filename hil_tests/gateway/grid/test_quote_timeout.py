"""A consumer's wait for the POD's quote grows with the grid: one POD answers every consumer."""

from gateway.grid.exchange import QUOTE_TIMEOUT_S, quote_timeout_s


def test_the_quote_wait_is_the_base_on_a_small_grid_and_grows_with_the_topology():
    assert quote_timeout_s(0) == quote_timeout_s(10) == QUOTE_TIMEOUT_S
    assert quote_timeout_s(56) == QUOTE_TIMEOUT_S * 5.6 > quote_timeout_s(25) > QUOTE_TIMEOUT_S
