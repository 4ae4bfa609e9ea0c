"""How much of a connection's buffer is one complete HTTP/1.1 request (pure; the pooled server
hands only complete requests to its workers)."""

from __future__ import annotations

MAX_HEAD = 64 * 1024


def request_size(buffer: bytearray, max_body: int) -> int | str:
    """Bytes of the first complete request in `buffer`, 0 if incomplete, or an error reply.

    -1: the head is complete and asks for "100 Continue" before its body is sent.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return "431 Request Header Fields Too Large" if len(buffer) > MAX_HEAD else 0
    head = bytes(buffer[:end]).lower()
    length = 0
    expect = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip()
        if name == b"expect" and value.strip() == b"100-continue":
            expect = True
        if name == b"transfer-encoding":
            return "411 Length Required"
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return "400 Bad Request"
            if length < 0:
                return "400 Bad Request"
    if length > max_body:
        return "413 Content Too Large"
    total = end + 4 + length
    if len(buffer) >= total:
        return total
    return -1 if expect and len(buffer) == end + 4 else 0
