# Firmware updates over MQTT, the meter's side (format: sgcore/ota_bundle.py, docs/ota.md).
#
# A retained offer arrives at every connect; a new version for this board, signed by the release
# key the meter was provisioned with, is fetched chunk by chunk (one retained chunk at a time:
# SUBSCRIBE, the chunk, UNSUBSCRIBE) into the slot that is not running, with the position saved
# after each chunk so a power cut resumes where it stopped. Then every file is hashed again from
# the flash; only a complete, matching image is handed to ota_boot as the trial image, and the
# meter reboots into it. Anything wrong is refused with a logged reason and nothing installed.
import binascii
import hashlib
import json
import os

import ota_boot
from micropython import const
from ota_slot import Slot, mkdirs, rmtree

from sgcore import ota_bundle as ob
from sgcore.secp256k1 import Verifier

DL_STATE = "ota/dl.json"
_CHUNK_TIMEOUT_MS = const(10000)
_CHUNK_TRIES = const(4)
IDLE, VERIFY, FETCH, CHECK = 0, 1, 2, 3


class OtaAgent:
    def __init__(self, board, cfg, net, board_type, version):
        self.board, self.net = board, net
        self.site, self.prefix, self.board_type = cfg["site"], cfg["topic_prefix"], board_type
        self.version, self.version_code = version, ob.version_code(version)
        self.trial_ms = cfg["ota_trial_s"] * 1000
        rel = cfg["release_pubkey"]
        self.release = binascii.unhexlify(rel) if rel else None
        self.offer_topic = ob.offer_topic(self.site, board_type, self.prefix).encode()
        self.phase, self.offer, self.store = IDLE, None, None
        self._want = None  # the chunk topic asked for
        self._in = None  # (topic, payload) taken from the reader, handled in poll()
        self._refused = None  # the last offer refused: logged once
        self._note = ota_boot.take_note()
        self._start = board.ticks_ms()
        net.extra = self._on_message
        net.client.subscribe(self.offer_topic, 1)
        self._resume()

    # --- messages ----------------------------------------------------------------------------

    def _on_message(self, topic, payload):
        if topic == self.offer_topic or (self.phase == FETCH and topic == self._want):
            self._in = (topic, payload)
            return True
        return False

    def busy(self):
        return self.phase != IDLE

    def poll(self):
        if self._note and self.net.client.connected():
            self.net.event("ota", result=self._note)
            self._note = ""
        if ota_boot.on_trial:
            self._trial_watch()
        msg, self._in = self._in, None
        if msg is not None and msg[0] == self.offer_topic:
            self._offered(msg[1])
        elif self.phase == VERIFY:
            self._verify_step()
        elif self.phase == FETCH:
            self._fetch_step(msg[1] if msg else None)
        elif self.phase == CHECK:
            self._check_step()

    # --- offer and signature -----------------------------------------------------------------

    def _refuse(self, reason, key=None):
        if key is not None and key == self._refused:
            return  # the same retained offer again: already reported
        self._refused = key
        print("ota: update refused: %s" % reason)
        self.net.event("ota", result="refused", reason=reason)

    def _offered(self, data):
        if self.phase != IDLE or ota_boot.on_trial:
            return  # one update at a time; a trial image proves itself first
        key = hashlib.sha256(data).digest()
        if key == self._refused:
            return  # the same retained offer again, at a reconnect
        try:
            o = ob.decode_offer(data)
        except ValueError as exc:
            return self._refuse("malformed offer (%s)" % exc, key)
        if o.board != self.board_type:
            return self._refuse("for board %s, this is %s" % (o.board, self.board_type), key)
        if o.version_code <= self.version_code:
            if o.version_code < self.version_code:
                self._refuse("downgrade to %s" % o.version, key)
            return
        if self.release is None:
            return self._refuse("no release key provisioned", key)
        self.offer, self._key = o, key
        self._verifier = Verifier(self.release, ob.digest(o.body), o.signature)
        self.phase = VERIFY

    def _verify_step(self):
        try:
            if not self._verifier.step():
                return
            ok = self._verifier.valid
        except ValueError:
            ok = False
        self._verifier = None
        if not ok:
            self.phase = IDLE
            return self._refuse("bad signature on %s" % self.offer.version, self._key)
        self.slot = "b" if ota_boot.booted == "a" else "a"
        rmtree("ota/" + self.slot)  # a leftover of an abandoned update
        self.store = Slot(self.slot, self.offer)
        self._save(0)
        self.board.report("ota_start", self.offer.version)  # the bench reads fuel and heap here
        print("ota: fetching %s (%d bytes) into slot %s" % (self.offer.version,
              self.offer.stream_len, self.slot))  # fmt: skip
        self._begin_fetch(0)

    # --- download ----------------------------------------------------------------------------

    def _save(self, nxt):
        mkdirs(DL_STATE)
        raw = binascii.hexlify(self.offer.body + self.offer.signature).decode()
        with open(DL_STATE + ".tmp", "w") as f:
            json.dump({"offer": raw, "slot": self.slot, "next": nxt}, f)
            f.flush()
        os.rename(DL_STATE + ".tmp", DL_STATE)

    def _resume(self):
        try:
            with open(DL_STATE) as f:
                st = json.load(f)
            self.offer = ob.decode_offer(binascii.unhexlify(st["offer"]))
            self.slot, nxt = st["slot"], int(st["next"])
        except (OSError, ValueError, KeyError):
            return
        if self.offer.version_code <= self.version_code:
            return self._abandon(None)
        print("ota: resuming %s at chunk %d" % (self.offer.version, nxt))
        self.store = Slot(self.slot, self.offer)
        if nxt * self.offer.chunk_size >= self.offer.manifest_len:
            bad = self.store.load_manifest()
            if bad:
                return self._abandon(bad)
        self._begin_fetch(nxt)

    def _abandon(self, reason):
        try:
            os.remove(DL_STATE)  # first: a power cut from here on resumes nothing
        except OSError:
            pass
        rmtree("ota/" + self.slot)
        self.phase, self.offer, self.store = IDLE, None, None
        if reason:
            self._refuse(reason, getattr(self, "_key", None))

    def _begin_fetch(self, i):
        self.phase, self._next, self._tries = FETCH, i, 0
        self._want = None
        self._request()

    def _request(self):
        o = self.offer
        self._want = ob.chunk_topic(self.site, o.board, o.version_code, self._next,
                                    self.prefix).encode()  # fmt: skip
        self._asked = self.board.ticks_ms()
        self.net.client.fetch(self._want)

    def _fetch_step(self, data):
        o, b = self.offer, self.board
        if data is None:
            if b.ticks_diff(b.ticks_ms(), self._asked) > _CHUNK_TIMEOUT_MS:
                self._tries += 1
                if self._tries >= _CHUNK_TRIES:
                    return self._abandon("chunk %d missing: bundle truncated" % self._next)
                self._request()  # lost, or the link was down: ask again
            return
        self.net.client.unsubscribe(self._want)
        start = self._next * o.chunk_size
        want = min(o.chunk_size, o.stream_len - start)
        if len(data) != want:
            return self._abandon("chunk %d has %d bytes, expected %d: bundle truncated"
                                 % (self._next, len(data), want))  # fmt: skip
        bad = self.store.write(start, data)
        if bad:
            return self._abandon(bad)
        self._next += 1
        self._save(self._next)
        if self._next < o.chunks():
            return self._request()
        self.phase = CHECK

    # --- check, install, trial ---------------------------------------------------------------

    def _check_step(self):
        done = self.store.check_step()
        if done is None:
            return
        if done is not True:
            return self._abandon(done)
        st = ota_boot.read_state()
        st["trial"], st["tries"], st["note"] = self.slot, 0, ""
        ota_boot.write_state(st)  # from here on the next boot tries the new image
        os.remove(DL_STATE)
        self.board.report("ota_done", self.offer.version)
        print("ota: %s complete in slot %s: rebooting into it" % (self.offer.version, self.slot))
        self.net.event("ota", result="rebooting", version=self.offer.version)
        self.board.reset()

    def _trial_watch(self):
        c = self.net.client
        if c.connected() and c.acked > 0:
            ota_boot.confirm(self.version)
            print("ota: running %s, confirmed" % self.version)
            self.net.event("ota", result="installed", version=self.version)
        elif self.board.ticks_diff(self.board.ticks_ms(), self._start) > self.trial_ms:
            print(
                "ota: no heartbeat from the new image in %d s: resetting" % (self.trial_ms // 1000)
            )
            self.board.reset()
