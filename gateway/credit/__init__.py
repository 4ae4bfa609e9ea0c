"""Credit tokens: the gateway's side of "release only the energy that was paid for"."""
