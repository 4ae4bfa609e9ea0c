# The meter application: wires the subsystems together and advances each by one bounded slice
# per step(). It talks to hardware only through the HAL (`hal.Board`), so the same code runs on
# an ESP32 and on the emulated board. main.py calls step() forever and collects garbage between.
import binascii
import gc
import os
import sys

import config
import hal
import keystore
import ota_agent
from credit import CreditStore
from fwinfo import FIRMWARE_NAME, FIRMWARE_VERSION
from journal import Journal
from meter_net import MeterNet
from meter_registers import MeterRegisters
from metering import Metering
from modbus_rtu import ModbusSlave
from recorder import Recorder, reading_from_interval, relay_event
from registers import Checkpoint, Registers
from relay_policy import RelayPolicy

from sgcore import reading as rd
from sgcore.compat import const

_IDLE_MS = const(250)  # loop period when nothing is in progress (inputs wake it earlier)
_NTP_RETRY_MS = const(60000)
_MAX_FAILED_STEPS = const(5)  # consecutive failed steps before the meter resets itself
_BOOTS_FILE = "boots.txt"


_LAST_RECORD = "last.rec"


def _keep_last_record(record):
    # one more small write per reading: the totals' floor survives a lost checkpoint even when
    # the gateway has acked (and the journal dropped) every record
    with open(_LAST_RECORD + ".tmp", "wb") as f:
        f.write(record)
        f.flush()
    os.rename(_LAST_RECORD + ".tmp", _LAST_RECORD)


def _read_last_record():
    try:
        with open(_LAST_RECORD, "rb") as f:
            return f.read()
    except OSError:
        return None


def _count_boot():
    try:
        with open(_BOOTS_FILE) as f:
            boots = int(f.read() or "0")
    except (OSError, ValueError):
        boots = 0
    with open(_BOOTS_FILE + ".tmp", "w") as f:
        f.write(str(boots + 1))
    os.rename(_BOOTS_FILE + ".tmp", _BOOTS_FILE)
    return boots + 1


class MeterApp:
    def __init__(self, code_ram=0):
        # code_ram: heap taken by the imported modules (bytecode); frozen on a real ESP32
        self.code_ram = code_ram
        board = self.board = hal.Board()
        self.boots = _count_boot()
        print("%s %s on board %s, boot %d, free heap %d"
              % (FIRMWARE_NAME, FIRMWARE_VERSION, board.board_id, self.boots, gc.mem_free()))  # fmt: skip
        self.cfg = config.load()
        self.key = None

    def boot(self):
        """Generator: the heavy part of start-up in slices (a first-boot key takes a while);
        main.py collects garbage between them."""
        board, cfg = self.board, self.cfg
        try:
            self.key = yield from keystore.load_or_create(board.random_bytes)
            print("meter id %s public key %s" % (binascii.hexlify(self.key.meter_id).decode(),
                                                  binascii.hexlify(self.key.pubkey).decode()))  # fmt: skip
        except keystore.KeyStoreError as exc:
            print("key error: %s" % exc)
        yield False
        self.regs = Registers(cfg["interval_s"])
        self.ckpt = Checkpoint("registers.bin", cfg["checkpoint_s"], board.ticks_diff)
        self.ckpt.load(self.regs)
        yield False
        self.journal = Journal("journal", cfg["journal_capacity"])
        # a lost checkpoint must not take the totals below a signed reading: the journal's last
        # record, or (every record acked and dropped) the copy kept in last.rec
        last = self.journal.last_record() or _read_last_record()
        if last is not None:
            try:
                r = rd.decode(last)[0]
                self.regs.floor(r.import_wh, r.export_wh)
            except ValueError:
                print("registers: ignoring a damaged %s" % _LAST_RECORD)
        yield False
        self.metering = Metering(board, cfg)
        meter_id = self.key.meter_id if self.key else b"\x00" * 16
        issuer = binascii.unhexlify(cfg["issuer_pubkey"]) if cfg["issuer_pubkey"] else None
        self.credit = CreditStore(meter_id, issuer)
        self.policy = RelayPolicy(cfg)
        self.recorder = Recorder(self.key, self.journal) if self.key else None
        self.last_token = None  # (reason, token id) of the latest token handled
        self._ntp_at = None
        self._clock_warned = False
        self._heap_peak = 0
        self._button = 0
        self._failed = 0
        self._chip_errors_base = 0
        self._low_credit = False
        self._journal_full = False
        self._unrecorded = None  # (relay, reason, credit) of a change not yet journaled
        provider = MeterRegisters(self)
        self.modbus = ModbusSlave(board.rs485_uart, board.rs485_de, board, provider,
                                  unit_id=cfg["modbus_unit"], on_write=provider.on_write)  # fmt: skip
        self.pollers = [self.modbus.poll]  # bus and network services, each polled every step
        self.net = None
        self.ota = None  # firmware updates over MQTT (ota_agent), with the uplink
        if self.key and self.credit.issuer:  # the configured key, or the one it rotated to
            self.net = MeterNet(board, cfg, self.journal, self.key.meter_id, self.credit.issuer,
                                self.offer_token, self._command)  # fmt: skip
            self.pollers.append(self.net.poll)
            self.ota = ota_agent.OtaAgent(board, cfg, self.net, hal.Board.board_id, FIRMWARE_VERSION)
            self.pollers.append(self.ota.poll)
        elif self.key:
            print("config: issuer_pubkey not set: MQTT uplink off, tokens refused")
        else:
            print("no meter key: MQTT uplink off (readings cannot be signed)")
        self._sync_clock()
        print("meter ready: source %s, interval %d s, journal %d pending, credit %d Wh"
              % (cfg["meter_source"], cfg["interval_s"], self.journal.pending_count(), self.credit_wh()))  # fmt: skip

    # --- pieces of a step --------------------------------------------------------------------

    def _sync_clock(self):
        b = self.board
        if b.rtc_time():
            return b.rtc_time()
        now_ms = b.ticks_ms()
        if self._ntp_at is None or b.ticks_diff(now_ms, self._ntp_at) >= _NTP_RETRY_MS:
            self._ntp_at = now_ms
            t = b.ntp_time()
            if t:
                b.rtc_set(t)
                print("clock set from network time: %d" % t)
                return t
        if not self._clock_warned:
            print("clock error: time not set; waiting for the gateway or NTP, not signing readings")
            self._clock_warned = True
        return 0

    def set_time(self, unix_seconds):
        """The gateway's time command."""
        self.board.rtc_set(unix_seconds)
        self._clock_warned = False
        print("clock set by the gateway: %d" % unix_seconds)

    def _command(self, op, arg):
        # signed gateway commands other than resend (the uplink handles that one)
        if op == "time":
            if arg < self.regs.start:
                print("clock: ignoring a time before the open interval (%d)" % arg)
            elif abs(arg - self.board.rtc_time()) > 2:
                self.set_time(arg)

    def event(self, kind, **fields):
        if self.net:
            self.net.event(kind, **fields)

    def flags(self):
        f = rd.FLAG_CRITICAL_LOAD if self.cfg["critical_load"] else 0
        if self.regs.restarted:
            f |= rd.FLAG_RESTARTED
        if self.metering.errors() > self._chip_errors_base:  # rejected frames in this interval
            f |= rd.FLAG_CHIP_ERRORS
        return f

    def credit_wh(self):
        return self.credit.credit_wh(self.regs.import_wh)

    def offer_token(self, data):
        """A token arrived (MQTT or Modbus): check it; the signature is verified over the next steps."""
        reason = self.credit.begin(data, self.board.rtc_time())
        if reason is not None:
            self._token_done(reason, None)

    def _token_done(self, reason, token):
        self.last_token = (reason, token.token_id if token else None)
        self.event("token", result=reason, id=self.last_token[1], credit_wh=self.credit_wh())
        if reason == "accepted":
            print("token %d accepted: credit %d Wh" % (token.token_id, self.credit_wh()))
            if self.net and self.credit.issuer:
                self.net.uplink.set_site_key(self.credit.issuer)  # follows a key change
        else:
            print("token rejected: %s" % reason)

    def _relay(self, now):
        b = self.board
        credit = self.credit_wh()
        self._warnings(credit)
        closed, reason, changed = self.policy.decide(
            b.ticks_ms(), credit, self.metering.power_w, self.credit.window_cap(now), b.ticks_diff
        )
        if not changed:
            return
        b.relay.value(1 if closed else 0)  # the relay acts at once; its record is signed after
        print(
            "relay %s (reason %d, credit %d Wh)" % ("closed" if closed else "open", reason, credit)
        )
        self.event("relay", closed=closed, reason=reason, credit_wh=credit)
        self._unrecorded = (1 if closed else 0, reason, credit)
        self._record_relay_event(now)

    def _record_relay_event(self, now):
        # a relay change made before the clock was set is journaled as soon as it is (stamped
        # with that first known time): no change goes unrecorded
        if self._unrecorded is None or not now or not self.recorder:
            return
        relay, reason, credit = self._unrecorded
        self._unrecorded = None
        self.recorder.submit(relay_event(self.key.meter_id, now, self.regs, relay, reason, credit,
                                         self.flags()))  # fmt: skip

    def _crypto(self):
        """One slice of signature work (token check first); True while work remains.

        One slice per step: main.py collects the slice's garbage before the next one."""
        if self.credit.busy():
            done = self.credit.step(self.regs.import_wh)
            if done:
                self._token_done(done[0], done[1])
            return True
        if self.recorder and self.recorder.busy():
            record = self.recorder.step()
            if record:
                _keep_last_record(record)
                print("record %d signed and journaled" % (self.journal.last_seq(),))
            return True
        return False

    def _report_heap(self):
        # Data-heap high-water mark: what is allocated at the end of a step, before main.py
        # collects (live data + this step's garbage), less the loaded code.
        peak = gc.mem_alloc() - self.code_ram
        if peak > self._heap_peak:
            self._heap_peak = peak
            self.board.report("heap_peak", peak)

    def _button_pressed(self):
        # The local button: print the meter's status on the console (as a meter's display would).
        pressed = self.board.button.value()
        if pressed and not self._button:
            st = self.status()
            print("status: import %d Wh, export %d Wh, power %d W, credit %d Wh, relay %s, journal %d pending"
                  % (st["import_wh"], st["export_wh"], self.metering.power_w, st["credit_wh"],
                     "closed" if st["relay"] else "open", st["journal"]["pending"]))  # fmt: skip
        self._button = pressed

    def status(self):
        rec = self.recorder
        return {
            "fw": FIRMWARE_VERSION, "boot": self.boots, "relay": self.board.relay.value(),
            "credit_wh": self.credit_wh(), "import_wh": self.regs.import_wh,
            "export_wh": self.regs.export_wh, "journal": self.journal.status(),
            "clock_set": bool(self.board.rtc_time()), "last_token": self.last_token,
            "intervals_not_journaled": rec.dropped_full + rec.dropped_queue if rec else 0,
        }  # fmt: skip

    def _warnings(self, credit):
        # edge-triggered status events: low credit, journal full (the gateway and dashboards
        # see them; the meter's display would show them)
        low = self.policy.low_credit(credit) and not self.cfg["critical_load"]
        if low != self._low_credit:
            self._low_credit = low
            self.event("low_credit", active=low, credit_wh=credit)
        full = bool(self.recorder and self.recorder.journal_full)
        if full != self._journal_full:
            self._journal_full = full
            print(
                "journal %s"
                % (
                    "full: new intervals are not journaled, totals still count"
                    if full
                    else "has room again"
                )
            )
            self.event("journal_full", active=full)

    # --- the loop body -------------------------------------------------------------------------

    def safe_step(self):
        """step(), but an error in one subsystem never ends the loop: it is printed, and after a
        few failures in a row the meter resets (state comes back from flash)."""
        try:
            self.step()
            self._failed = 0
            return
        except MemoryError:
            self._failed += 1  # no printing here: that would allocate
        except Exception as exc:  # noqa: BLE001 - the firmware loop must survive anything
            self._failed += 1
            print("step failed (%d in a row):" % self._failed)
            sys.print_exception(exc)
        if self._failed >= _MAX_FAILED_STEPS:
            print("too many failed steps: resetting")
            self.board.reset()

    def step(self):
        b = self.board
        now = self._sync_clock()
        regs = self.regs
        self.metering.poll(
            regs, force=bool(now) and regs.start and now >= regs.start + regs.interval_s
        )
        self.credit.track_window(now, regs.import_wh)
        self._relay(now)
        self._record_relay_event(now)
        iv = self.regs.tick(now)
        if iv is not None:
            self.ckpt.save(self.regs)  # totals on flash before the reading exists
            flags = self.flags() | (rd.FLAG_RESTARTED if iv.restarted else 0)
            self._chip_errors_base = self.metering.errors()
            if self.recorder:
                credit = self.credit_wh()
                self.recorder.submit(
                    reading_from_interval(self.key.meter_id, iv, b.relay.value(), credit, flags)
                )
        else:
            self.ckpt.maybe_save(self.regs, b.ticks_ms())
        self._button_pressed()
        busy = self._crypto() or (self.net is not None and self.net.busy())
        busy = busy or (self.ota is not None and self.ota.busy())
        for poll in self.pollers:
            poll()
        self._report_heap()
        if not busy:
            b.sleep_ms(_IDLE_MS)
