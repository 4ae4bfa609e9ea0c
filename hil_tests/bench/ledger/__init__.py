"""The ledger benchmark's parts (`python -m hil_tests.bench.bench_ledger` runs them): the
verification ceiling, the load and its client, the processes under test, the figures, the report."""
