# Store-and-forward of the meter's journal over MQTT (topics and messages: docs/mqtt-topics.md,
# the meter's side: docs/meter-mqtt.md).
#
# poll() publishes the journal's unacknowledged records in sequence order on .../reading (QoS 1,
# never more than the client's window in flight, at most `ahead` records beyond the gateway's
# last ack) and frees them only on the gateway's signed ack {"upto": N, "h": <hash of record N>,
# "sig": ...} (the bytes: sgcore/messages.py, the topics: sgcore/topics.py). The signature (the site key, secp256k1) is checked a
# slice per poll() with sgcore.secp256k1.Verifier, so the main loop stays responsive.
# A signed {"op": "resend", "from": N} restarts publishing at N; other signed commands go to
# on_command(op, arg). A command carrying the gateway's time (time, clock) is applied late, after
# its signature check (and the commands before it): its time is advanced by the ticks since it
# arrived, so the clock is set to the gateway's time plus only the network's transit. After a reconnect, or when no ack came for `rewind_ms`, publishing restarts
# at the first unacknowledged record: the gateway drops what it already has and re-acks.
# Commands wait in arrival order (at most _MAX_CMDS; each is verified before the next) and go
# before a waiting ack: only the latest ack matters, while a command replaced by the next one
# was lost (a "clock" command followed by a "resend" left a clock set an hour ahead), and
# acks arriving all the time kept a command waiting behind them.

import hashlib
import struct

from issuer_table import IssuerTable

from sgcore import messages, secp256k1
from sgcore.compat import const
from sgcore.topics import meter_topic_bytes as topic  # noqa: F401 (meter_net's topics too)

_SEQ_AT = const(19)  # u32 seq inside a record (sgcore.reading)
_TIMED = ("time", "clock")  # commands whose argument is the gateway's unix time
_MAX_CMDS = const(4)  # commands waiting for their signature check (the oldest goes first)


class Uplink:
    def __init__(self, client, journal, board, site, meter_id, site_pubkey, on_command=None,
                 ahead=16, rewind_ms=60000, verify_steps=1, log=print,
                 verifier=secp256k1.Verifier):  # fmt: skip
        self._c = client
        self._j = journal
        self._b = board
        self._mid = bytes(meter_id)
        # kept as bytes: the Verifier parses it in slices too (a square root, ~5 % of a check)
        self._pub = bytes(site_pubkey)
        self._on_command = on_command
        self._ahead = ahead
        self._rewind_ms = rewind_ms
        self._steps = verify_steps
        self._log = log
        self._verifier = verifier  # hook: (pubkey, digest32, sig64) -> .step() / .valid
        self.reading_topic = topic(site, meter_id, "reading")
        self.ack_topic = topic(site, meter_id, "ack")
        self.cmd_topic = topic(site, meter_id, "cmd")
        self.published = 0  # records handed to the client (first sends and resends)
        self.freed = 0  # records freed from the journal by verified acks
        self._next = journal.acked_seq() + 1  # next seq to publish
        self._first = self._next  # first unacknowledged seq when we last looked
        self._progress = board.ticks_ms()
        self._connects = 0
        self._ack_in = None  # the latest ack received, waiting for poll()
        self._cmds = []  # [payload, ticks_ms it arrived] of commands waiting, oldest first
        self._job = None  # (op, arg, verifier, arrived) under way
        self._table = IssuerTable(log)  # the site key's table, rebuilt here if it went stale
        self._table.follow(self._pub)
        client.on_message = self._on_message
        client.subscribe(self.ack_topic, 1)
        client.subscribe(self.cmd_topic, 1)

    def set_site_key(self, site_pubkey):
        """The site key was rotated (a key-change token): verify acks and commands with the new one."""
        self._pub = bytes(site_pubkey)
        self._table.follow(self._pub)

    def busy(self):
        """True while a signature check is under way (the main loop may skip its sleep)."""
        return self._job is not None

    def poll(self):
        # A verification slice allocates up to ~20 KB of short-lived integers: such a poll does
        # nothing else; heap_budget.py keeps 40 KB free for a step, so the slice fits, and the
        # main loop collects once the budget says so.
        try:
            if self._job is not None:
                self._step_job()
                return
            if self._cmds:
                payload, arrived = self._cmds.pop(0)
                self._start_cmd(payload, arrived)
            elif self._ack_in is not None:
                payload, self._ack_in = self._ack_in, None
                self._start_ack(payload)
            elif self._table.pending():
                self._table.step()  # a slice of the key table's build or check
        except MemoryError:  # logged without formatting: the heap is full until it is collected
            self._job = None
            self._log("uplink: out of heap handling a message, dropped")
            return
        except Exception as e:  # e.g. a damaged journal segment: logged, the uplink goes on
            self._job = None
            self._log(f"uplink: handling a message failed: {e!r}")
            return
        self._publish()

    # --- incoming ------------------------------------------------------------------------------

    def _on_message(self, t, payload, retained):
        if t == self.ack_topic:
            self._ack_in = payload
        elif t == self.cmd_topic:
            if len(self._cmds) >= _MAX_CMDS:
                self._cmds.pop(0)
                self._log("uplink: too many commands waiting, the oldest dropped")
            self._cmds.append((payload, self._b.ticks_ms()))

    def _start_ack(self, payload):
        try:
            upto, h, sig = messages.decode_ack(payload)
        except messages.MessageFormatError as e:
            self._log(f"uplink: {e}")
            return
        j = self._j
        if upto <= j.acked_seq():
            return  # already freed: a replayed or repeated ack changes nothing
        if upto > j.last_seq():
            self._log(f"uplink: ack upto {upto} beyond the last record {j.last_seq()}")
            return
        if self._hash_of(upto) != h:
            self._log(f"uplink: ack for seq {upto} names another record")
            return
        digest = messages.ack_digest(self._mid, upto, h)
        self._job = ("ack", upto, self._verifier(self._pub, digest, sig), 0)

    def _start_cmd(self, payload, arrived):
        try:
            op, arg, sig, nonce = messages.decode_cmd(payload)
        except messages.MessageFormatError as e:
            self._log(f"uplink: {e}, ignored")
            return
        digest = messages.cmd_digest(self._mid, op, arg, nonce)
        self._job = (op, (arg, nonce), self._verifier(self._pub, digest, sig), arrived)

    def _step_job(self):
        op, arg, v, arrived = self._job
        for _ in range(self._steps):
            if v.step():
                break
        else:
            return  # more slices on the next poll()
        self._job = None
        if not v.valid:
            self._log(f"uplink: {op} {arg} has a bad signature, ignored")
        elif op == "ack":
            self._apply_ack(arg)
        elif op == "resend":
            arg = arg[0]
            first = self._j.acked_seq() + 1
            if arg < first:
                self._log(f"uplink: resend from {arg}, but records before {first} are freed")
            self._next = arg if arg > first else first
        elif self._on_command is not None:
            value, nonce = arg
            if op in _TIMED:  # the gateway's time when sent + how long it waited here
                value += (self._b.ticks_diff(self._b.ticks_ms(), arrived) + 500) // 1000
            # on_command("clock", (t, nonce)): the app checks the nonce
            self._on_command(op, (value, nonce) if nonce else value)

    def _apply_ack(self, upto):
        if upto > self._j.acked_seq():
            n = self._j.ack(upto)
            self.freed += n
            self._log(f"uplink: gateway stored up to seq {upto}, {n} records freed")

    def _hash_of(self, seq):
        j = self._j
        if seq == j.last_seq():
            return j.last_hash()
        rec = j.record(seq)  # one read: an unsigned ack must not cost a scan of the journal
        return hashlib.sha256(rec).digest() if rec is not None else None

    # --- outgoing ------------------------------------------------------------------------------

    def _rewind(self, why):
        first = self._j.acked_seq() + 1
        if self._next > first:
            self._log(f"uplink: {why}: publishing again from seq {first}")
            self._next = first

    def _publish(self):
        c = self._c
        j = self._j
        now = self._b.ticks_ms()
        if c.link.connects != self._connects:
            self._connects = c.link.connects
            self._rewind("new connection")
        first = j.acked_seq() + 1
        if first != self._first:
            self._first = first
            self._progress = now
        elif self._b.ticks_diff(now, self._progress) > self._rewind_ms:
            self._progress = now
            self._rewind(f"no ack for {self._rewind_ms} ms")
        if self._next < first:
            self._next = first
        if self._next > j.last_seq() or self._next - first >= self._ahead or not c.can_publish():
            return
        if self._next == first:
            self._progress = now  # nothing was outstanding: the ack timer starts now
        gen = j.pending()
        try:
            for rec in gen:
                seq = struct.unpack_from(">I", rec, _SEQ_AT)[0]
                if seq < self._next:
                    continue
                if seq - first >= self._ahead or not c.publish(self.reading_topic, rec, 1):
                    break
                self._next = seq + 1
                self.published += 1
                if not c.can_publish():
                    break
        except Exception as e:  # a damaged journal segment: log, retry on the next poll
            self._log(f"uplink: reading the journal failed: {e!r}")
        finally:
            gen.close()
