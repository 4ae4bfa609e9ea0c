"""How much of a buffer is one complete request (gateway/http_request_size.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.http_request_size import MAX_HEAD, request_size

HEAD = b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"


@given(st.binary(max_size=300), st.integers(0, 300), st.binary(max_size=50))
def test_a_request_is_complete_exactly_when_its_whole_body_is_buffered(body, cut, rest):
    request = HEAD % len(body) + b"\r\n" + body
    buffered = bytearray(
        (request + rest)[: len(request) + len(rest) - cut] if cut else request + rest
    )
    got = request_size(buffered, max_body=1000)
    assert got == (len(request) if len(buffered) >= len(request) else 0)


def test_expect_100_continue_is_asked_for_once_the_head_is_complete():
    head = HEAD % 5 + b"Expect: 100-continue\r\n\r\n"
    assert request_size(bytearray(head), 1000) == -1
    assert request_size(bytearray(head + b"ab"), 1000) == 0
    assert request_size(bytearray(head + b"abcde"), 1000) == len(head) + 5


def test_requests_it_does_not_take_get_their_status():
    assert request_size(bytearray(HEAD % 2000 + b"\r\n"), 1000) == "413 Content Too Large"
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_size(bytearray(chunked), 1000) == "411 Length Required"
    for bad in (b"x", b"-1"):
        head = b"POST / HTTP/1.1\r\nContent-Length: " + bad + b"\r\n\r\n"
        assert request_size(bytearray(head), 1000) == "400 Bad Request"
    assert (
        request_size(bytearray(b"G" * (MAX_HEAD + 1)), 1000)
        == "431 Request Header Fields Too Large"
    )
    assert request_size(bytearray(b"G" * MAX_HEAD), 1000) == 0  # still reading the head
