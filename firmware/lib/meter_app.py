# The meter application: wires the subsystems together and advances each by one bounded slice
# per step(). It talks to hardware only through the HAL (`hal.Board`), so the same code runs on
# an ESP32 and on the emulated board. main.py calls step() forever and collects garbage between.
import binascii
import gc
import sys

import config
import hal
import keystore
import meter_flash
import ota_agent
from credit import CreditStore
from fwinfo import FIRMWARE_NAME, FIRMWARE_VERSION
from heap_budget import HeapBudget
from journal import Journal
from meter_clock import MeterClock
from meter_net import MeterNet
from meter_panel import MeterPanel
from meter_registers import MeterRegisters
from meter_relay import MeterRelay
from metering import Metering
from modbus_rtu import ModbusSlave
from recorder import Recorder, reading_from_interval
from registers import Checkpoint, Registers
from relay_policy import RelayPolicy
from token_desk import TokenDesk
from token_tag import TagKey

from sgcore import reading as rd
from sgcore.compat import const

_IDLE_MS = const(250)  # loop period when nothing is in progress (inputs wake it earlier)
_MAX_FAILED_STEPS = const(5)  # consecutive failed steps before the meter resets itself
_WATCHDOG_MS = const(30000)  # the hardware watchdog: a step (or boot slice) stuck this long resets


class MeterApp:
    def __init__(self, code_ram=0):
        # code_ram: heap taken by the imported modules (bytecode); frozen on a real ESP32
        self.code_ram = code_ram
        board = self.board = hal.Board()
        self.heap = HeapBudget(board, code_ram)
        self.boots = meter_flash.count_boot()
        print("%s %s on board %s, boot %d, free heap %d"
              % (FIRMWARE_NAME, FIRMWARE_VERSION, board.board_id, self.boots, gc.mem_free()))  # fmt: skip
        self.cfg = config.load()
        self.key = None
        board.watchdog_start(_WATCHDOG_MS)  # fed by every boot slice and every step

    def boot(self):
        """Generator: the heavy part of start-up in slices (a first-boot key takes a while);
        main.py collects garbage between them."""
        board, cfg = self.board, self.cfg
        try:
            self.key = yield from meter_flash.fed(
                board, keystore.load_or_create(board.random_bytes)
            )
            print("meter id %s public key %s" % (binascii.hexlify(self.key.meter_id).decode(),
                                                  binascii.hexlify(self.key.pubkey).decode()))  # fmt: skip
        except keystore.KeyStoreError as exc:
            print("key error: %s" % exc)
        board.watchdog_feed()
        yield False
        self.regs = Registers(cfg["interval_s"])
        self.ckpt = Checkpoint("registers.bin", cfg["checkpoint_s"], board.ticks_diff)
        self.ckpt.load(self.regs)
        yield False
        self.journal = Journal("journal", cfg["journal_capacity"])
        meter_flash.floor_registers(self.regs, self.journal)
        yield False
        self.metering = Metering(board, cfg)
        meter_id = self.key.meter_id if self.key else b"\x00" * 16
        issuer = binascii.unhexlify(cfg["issuer_pubkey"]) if cfg["issuer_pubkey"] else None
        self.credit = CreditStore(meter_id, issuer, reserve_wh=cfg["credit_reserve_wh"])
        self.tokens = TokenDesk(self.credit)
        self.tag_key = (
            TagKey(self.key.priv, self.credit.issuer) if self.key and self.credit.issuer else None
        )
        self.policy = RelayPolicy(cfg)
        self.recorder = (
            Recorder(self.key, self.journal, self._close_journaled) if self.key else None
        )
        self.clock = MeterClock(board)
        self.panel = MeterPanel(self)
        self.last_token = None  # (reason, token id) of the latest token answered
        self._failed = 0
        self._tokens_turn = False  # token and reading signature work alternate (_crypto)
        self._chip_errors_base = 0
        self.relay_ctl = MeterRelay(self)
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
            self.net.client.set_online(self.clock.status())
            self.clock.on_nonce = self.net.client.set_online  # (status, refresh published now)
            self.ota = ota_agent.OtaAgent(
                board, cfg, self.net, hal.Board.board_id, FIRMWARE_VERSION
            )
            self.pollers.append(self.ota.poll)
        elif self.key:
            print("config: issuer_pubkey not set: MQTT uplink off, tokens refused")
        else:
            print("no meter key: MQTT uplink off (readings cannot be signed)")
        self.clock.now()
        print("meter ready: source %s, interval %d s, journal %d pending, credit %d Wh"
              % (cfg["meter_source"], cfg["interval_s"], self.journal.pending_count(), self.credit_wh()))  # fmt: skip

    # --- pieces of a step --------------------------------------------------------------------

    def _command(self, op, arg):
        # signed gateway commands other than resend (the uplink handles that one)
        if op == "time":
            self.clock.command(arg, self.regs.start)
        elif op == "clock":
            self.clock.clock_command(arg[0], arg[1])

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
        return self.credit.credit_wh()

    def offer_token(self, data, tag=None):
        """A token arrived: answered at once if a cheap check fails, else queued for its
        signature check (token_desk.py), ahead of untagged ones if the gateway tagged it."""
        tagged = self.tag_key is not None and self.tag_key.tagged(data, tag)
        for reason, token in self.tokens.offer(data, self.board.rtc_time(), tagged):
            self._token_done(reason, token)

    def _token_done(self, reason, token):
        self.last_token = (reason, token.token_id if token else None)
        self.event("token", result=reason, id=self.last_token[1], credit_wh=self.credit_wh())
        if reason == "accepted":
            print("token %d accepted: credit %d Wh" % (token.token_id, self.credit_wh()))
            if self.net and self.credit.issuer:
                self.net.uplink.set_site_key(self.credit.issuer)  # follows a key change
        else:
            print("token rejected: %s (id %s)" % (reason, self.last_token[1]))

    def _close_journaled(self):
        # the reading of a closed interval is on flash (or never will be): the checkpoint may
        # now move past that close
        self.regs.commit_close()
        self.ckpt.save(self.regs)

    def _crypto(self, now):
        """One slice of signature work; True while work remains. Tokens and readings take turns
        when both wait: with tokens first always, a steady stream of paid credit (a token per
        window, each taking seconds to verify on a busy CPU) kept every reading unsigned all day.

        One slice per step: main.py collects the slice's garbage before the next one."""
        recording = self.recorder is not None and self.recorder.busy()
        self._tokens_turn = not self._tokens_turn
        if self.tokens.busy() and (self._tokens_turn or not recording):
            done = self.tokens.step(now)
            if done:
                self._token_done(done[0], done[1])
            return True
        if self.recorder and self.recorder.busy():
            record = self.recorder.step()
            if record:
                meter_flash.keep_last_record(record)
                print("record %d signed and journaled" % (self.journal.last_seq(),))
            return True
        if self.tag_key is not None and self.tag_key.busy():
            # the delivery-tag key, once per boot, when nothing else runs
            if self.tag_key.step() and self.tag_key.key is not None:
                print("delivery-tag key ready")
            return True
        return False

    def status(self):
        return self.panel.status()

    # --- the loop body -------------------------------------------------------------------------

    def safe_step(self):
        """step(), but an error in one subsystem never ends the loop: it is printed, and after a
        few failures in a row the meter resets (state comes back from flash).

        True when main.py should collect the garbage before the next step (heap_budget.py), as
        after a failed step (it may have left the heap full)."""
        try:  # the feed allocates too (a host call's reply): on an uncollected heap it may fail
            self.board.watchdog_feed()
            self.heap.step_begins()
            self.step()
            self._failed = 0
            return self.heap.step_ends()
        except MemoryError:
            self._failed += 1  # no printing here: that would allocate
        except Exception as exc:  # noqa: BLE001 - the firmware loop must survive anything
            self._failed += 1
            print("step failed (%d in a row):" % self._failed)
            sys.print_exception(exc)
        if self._failed >= _MAX_FAILED_STEPS:
            print("too many failed steps: resetting")
            self.board.reset()
        return self.heap.failed()

    def step(self):
        b = self.board
        now = self.clock.now()
        regs = self.regs
        self.metering.poll(
            regs, force=bool(now) and regs.start and now >= regs.start + regs.interval_s
        )
        self.credit.track(regs.import_wh, b.relay.value() == 1)
        self.credit.track_window(now)
        self.relay_ctl.step(now)
        iv = self.regs.tick(now)
        if iv is not None:
            print(
                "interval %d..%d closed: import %d Wh" % (iv.start, iv.end, iv.interval_import_wh)
            )
            flags = self.flags() | (rd.FLAG_RESTARTED if iv.restarted else 0)
            self._chip_errors_base = self.metering.errors()
            if self.recorder:
                credit = self.credit_wh()
                self.recorder.submit(
                    reading_from_interval(self.key.meter_id, iv, b.relay.value(), credit, flags)
                )
            else:
                self._close_journaled()
        else:
            self.ckpt.maybe_save(self.regs, b.ticks_ms())
        self.panel.button()
        busy = self._crypto(now) or (self.net is not None and self.net.busy())
        busy = busy or (self.ota is not None and self.ota.busy())
        for poll in self.pollers:
            poll()
        if not busy:
            b.sleep_ms(_IDLE_MS)
