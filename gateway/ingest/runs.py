"""A run: the consecutive records of one meter that one batch accepts, stored as one row."""

from __future__ import annotations


class Run:
    """The records of one meter a batch accepts: consecutive seqs, stored as one run."""

    __slots__ = ("first_id", "received_at", "records", "ends")

    def __init__(self, first_id: int, received_at: float) -> None:
        self.first_id = first_id  # store.row_id(num, seq) of its first record
        self.received_at = received_at
        self.records: list[bytes] = []
        self.ends: list[int] = []

    def row(self) -> tuple[int, int, bytes, int, int, float]:
        """What `ReadingStore.write_runs` stores of it."""
        ends = self.ends
        joined = b"".join(self.records)
        return self.first_id, len(self.records), joined, min(ends), max(ends), self.received_at
