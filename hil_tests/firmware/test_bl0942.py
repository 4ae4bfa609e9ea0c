"""BL0942 driver (firmware/lib/bl0942.py) in MicroPython against scripted frames and the emulated chip."""

from __future__ import annotations

import binascii
import os
import select
import threading
import tty

import pytest

from boards.emulated.host.bl0942_chip import (
    DEFAULT_CALIBRATION,
    BL0942Chip,
    checksum,
    encode_frame,
)
from hil_tests.firmware.conftest import json_lines, run_mpy

CAL = DEFAULT_CALIBRATION


def frame(watt_w: float = 1000.0, volts: float = 230.0, cf: int = 0, **kw: int) -> bytes:
    amps = abs(watt_w) / volts
    fields = {
        "i_rms": round(amps * CAL["bl0942_iref"]),
        "v_rms": round(volts * CAL["bl0942_uref"]),
        "i_fast_rms": round(amps * CAL["bl0942_iref"]),
        "watt": round(watt_w * CAL["bl0942_pref"]),
        "cf_cnt": cf,
        "period_us": 20000,
        "status": 0,
    }
    fields.update(kw)
    return encode_frame(**fields)


def test_frame_layout_matches_the_datasheet() -> None:
    f = frame(cf=0x123456)
    assert len(f) == 23 and f[0] == 0x55
    assert f[13:16] == bytes([0x56, 0x34, 0x12])  # CF_CNT, little-endian
    assert f[16:19] == (20000).to_bytes(3, "little")  # FREQ: 3 bytes on the wire
    assert f[22] == ~(0x58 + sum(f[:22])) & 0xFF == checksum(f[:22])


def _driver_run(answers: list[bytes], script: str, chunk: int = 23, stale: bytes = b"") -> dict:
    code = (
        "import json, binascii, bl0942, fakes\n"
        f"uart = fakes.FakeUart([binascii.unhexlify(h) for h in {[a.hex() for a in answers]!r}],"
        f" chunk={chunk}, stale=binascii.unhexlify({stale.hex()!r}))\n"
        "chip = bl0942.BL0942(uart, clock=fakes.FakeClock(), timeout_ms=200)\n"
        "out = {}\n" + script + "\nprint('J ' + json.dumps(out))\n"
    )
    return json_lines(run_mpy(code))[0]


def test_good_frame_is_converted_with_the_calibration() -> None:
    got = _driver_run(
        [frame(watt_w=1150.0, volts=230.0, cf=100)],
        "out['ok'] = chip.read()\n"
        "out['v'] = [chip.voltage_dv, chip.current_ma, chip.power_w, chip.freq_chz]\n"
        "out['cmd'] = [binascii.hexlify(w).decode() for w in uart.written]\n"
        "out['n'] = [chip.frames, chip.bad_frames, chip.timeouts]",
        chunk=5,  # the answer dribbles in a few bytes at a time
        stale=b"\x55\x01\x02",  # bytes of an earlier, late answer
    )
    assert got["ok"] is True
    v_dv, i_ma, p_w, f_chz = got["v"]
    assert abs(v_dv - 2300) <= 1 and abs(i_ma - 5000) <= 1 and abs(p_w - 1150) <= 1
    assert f_chz == 5000
    assert got["cmd"] == ["58aa"]
    assert got["n"] == [1, 0, 0]


def test_bad_checksum_and_bad_header_frames_are_rejected_and_counted() -> None:
    good = frame(cf=10)
    bad_sum = good[:-1] + bytes([good[-1] ^ 1])
    bad_header = bytes([0x54]) + good[1:22] + bytes([checksum(bytes([0x54]) + good[1:22])])
    got = _driver_run(
        [good, bad_sum, bad_header, frame(cf=20)],
        "out['r'] = [chip.read() for _ in range(4)]\n"
        "out['n'] = [chip.frames, chip.bad_frames, chip.cf_cnt]",
    )
    assert got["r"] == [True, False, False, True]
    assert got["n"] == [2, 2, 20]


def test_missing_answer_times_out_within_the_bound() -> None:
    got = _driver_run(
        [b"\x55\x00"],  # a truncated answer, then silence
        "clk = chip._clock\n"
        "out['ok'] = chip.read()\n"
        "out['t'] = clk.t\n"
        "out['timeouts'] = chip.timeouts",
    )
    assert got["ok"] is False and got["timeouts"] == 1
    assert 200 <= got["t"] < 300  # bounded by timeout_ms (on the fake clock)


def test_cf_cnt_wrap_direction_and_chip_restart() -> None:
    eref = CAL["bl0942_eref"]
    uwh = round(1e9 / eref)
    answers = [
        frame(cf=0xFFFFF0),  # baseline
        frame(cf=0x000010),  # wrapped: 0x20 counts of import
        frame(watt_w=-500.0, cf=0x000010),  # the flow turns round
        frame(watt_w=-500.0, cf=0x000110),  # 0x100 counts of export
        frame(cf=0x000005),  # the chip restarted: 5 counts since
    ]
    got = _driver_run(
        answers,
        "out['r'] = []\n"
        "for _ in range(5):\n"
        "    chip.read()\n"
        "    out['r'].append(list(chip.take_energy()))\n"
        "out['resets'] = chip.chip_resets",
    )
    steps = got["r"]
    assert steps[0] == [0, 0] and steps[2] == [0, 0]
    assert steps[1] == [0x20 * uwh // 1000, 0]
    assert steps[3][0] == 0 and abs(steps[3][1] - 0x100 * uwh / 1000) < 1
    assert abs(sum(r[0] for r in steps) - (0x20 + 5) * uwh / 1000) < 1  # remainders carried
    assert got["resets"] == 1


# --- the emulated chip on a pty, talked to from CPython and from the driver in MicroPython ---


class Load:
    def __init__(self) -> None:
        self.watts = 1000.0
        self.volts = 230.0

    def __call__(self) -> tuple[float, float]:
        return self.watts, self.volts


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def wire():
    """A pty pair: the chip opens the slave path, the test holds the master fd."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def _read_exactly(fd: int, n: int, timeout: float = 30.0) -> bytes:  # headroom: a loaded host
    data = b""
    while len(data) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        data += os.read(fd, n - len(data))
    return data


def test_chip_answers_full_packet_reads_over_the_pty(wire) -> None:
    master, path = wire
    load, clock = Load(), FakeTime()
    with BL0942Chip(path, load, clock=clock, cf_cnt=CF_START) as chip:
        os.write(master, b"\x00\x58\xaa")  # noise first, then the request
        first = _read_exactly(master, 23)
        clock.t += 3600  # one hour at 1 kW
        load.watts = -2000.0  # the next hour exports
        os.write(master, b"\x58\xaa")
        second = _read_exactly(master, 23)
        chip.inject_bad_checksum()
        os.write(master, b"\x58\xaa")
        bad = _read_exactly(master, 23)
        assert chip.requests == 3
    assert first[0] == 0x55 and first[22] == checksum(first[:22])
    assert second[22] == checksum(second[:22]) and bad[22] != checksum(bad[:22])
    cf1 = int.from_bytes(first[13:16], "little")
    cf2 = int.from_bytes(second[13:16], "little")
    assert (cf2 - cf1) & 0xFFFFFF == pytest.approx(CAL["bl0942_eref"], abs=1)  # 1 kWh, wrapped
    watt2 = int.from_bytes(second[10:13], "little", signed=True)
    assert watt2 == round(-2000.0 * CAL["bl0942_pref"])
    assert int.from_bytes(second[19:22], "little") & 1  # reverse-power status bit


CF_START = 0xFFFF00  # close to the 24-bit wrap


def test_driver_in_micropython_meters_the_emulated_chip(wire) -> None:
    master, path = wire
    load, clock = Load(), FakeTime()
    rx = bytearray()
    lock = threading.Lock()

    def uart_write(payload: str) -> int:
        return os.write(master, binascii.unhexlify(payload))

    def uart_read(n: int) -> str:
        with lock:
            if not rx:
                rx.extend(_read_exactly(master, 1, timeout=0.05))
            ready, _, _ = select.select([master], [], [], 0)
            if ready:
                rx.extend(os.read(master, 256))
            out = bytes(rx[:n])
            del rx[:n]
        return out.hex()

    def advance(seconds: int) -> None:
        clock.t += seconds  # time passes at the present load

    def set_load(watts: float) -> None:
        chip.integrate()  # up to now with the old load
        load.watts = watts
        chip.integrate()  # samples the new load

    host = {
        "w": uart_write,
        "r": uart_read,
        "any": lambda _p: len(rx),
        "advance": advance,
        "load": set_load,
        "inject": lambda n: chip.inject_bad_checksum(n),
    }
    guest = """
import host, json, binascii, time, bl0942

def call(name, arg):
    return json.loads(host.call(name, json.dumps(arg)))[1]

class HostUart:
    def write(self, buf):
        return call('w', binascii.hexlify(bytes(buf)).decode())
    def any(self):
        return call('any', None)
    def readinto(self, buf):
        data = binascii.unhexlify(call('r', len(buf)))
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

meter = bl0942.BL0942(HostUart(), timeout_ms=1000)
out = {'first': meter.read()}
call('advance', 3600)
out['after_import'] = [meter.read(), list(meter.take_energy())]
call('load', -1800.0)
meter.read()
call('advance', 3600)
call('load', 0.0)
out['after_export'] = [meter.read(), list(meter.take_energy())]
call('inject', 1)
out['bad'] = [meter.read(), meter.bad_frames, meter.read()]
out['v'] = [meter.voltage_dv, meter.power_w]
print('J ' + json.dumps(out))
"""
    with BL0942Chip(path, load, clock=clock, cf_cnt=CF_START) as chip:
        outcome = run_mpy(guest, host_functions=host)
    got = json_lines(outcome)[0]
    assert got["first"] is True
    ok, (imp, exp) = got["after_import"]
    assert ok and exp == 0 and abs(imp - 1_000_000) <= 200  # 1 kWh (+- one CF count of 187 mWh)
    ok, (imp, exp) = got["after_export"]
    assert ok and imp == 0 and abs(exp - 1_800_000) <= 200
    assert got["bad"] == [False, 1, True]
    assert abs(got["v"][0] - 2300) <= 1 and got["v"][1] == 0


def test_chip_tells_what_flowed_each_way_at_the_powers_it_sampled(wire) -> None:
    """The sim books a BL0942 node's physics from the chip (flow_wh), not from its own steps:
    the chip samples its load model on its own clock, which the rig's steps never meet exactly."""
    _master, path = wire
    load, clock = Load(), FakeTime()
    with BL0942Chip(path, load, clock=clock) as chip:
        chip.integrate()
        start = chip.flow_wh()
        clock.t += 1800  # half an hour at 1 kW
        assert chip.flow_wh()[0] - start[0] == pytest.approx(500.0)
        load.watts = -2000.0
        chip.integrate()  # it samples the new power now
        clock.t += 1800  # half an hour exporting 2 kW
        imp, exp = chip.flow_wh()
    assert (imp - start[0], exp - start[1]) == pytest.approx((500.0, 1000.0))
