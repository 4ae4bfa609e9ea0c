"""What a caller without the control token can make the node hold (reviewer2's findings on the
keep-alive control API): the real serve_control in-process, raw sockets."""

from __future__ import annotations

import asyncio

from gateway.ln.node import control

TOKEN = "ab" * 32


async def _ok(_body: object) -> dict[str, bool]:
    return {"ok": True}


async def _server(cap: int = 4, timeout_s: float = 5.0) -> asyncio.Server:
    return await control.serve_control(
        "127.0.0.1", 0, {"GET /info": _ok}, TOKEN, request_timeout_s=timeout_s,
        max_connections=cap,
    )  # fmt: skip


def _handlers() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_coro().__name__ == "handle")  # type: ignore[union-attr,misc]


def test_a_unicode_digit_content_length_is_answered_400_not_an_unhandled_exception() -> None:
    """'²'.isdigit() is True but int('²') raises: the handler died without an answer and the
    loop logged a traceback for every such request."""

    async def main() -> tuple[list[bytes], list[dict]]:
        errors: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))
        server = await _server()
        port = server.sockets[0].getsockname()[1]
        answers = []
        for _ in range(5):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /info HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n")
            answers.append(await asyncio.wait_for(r.read(), 5))
            w.close()
        await asyncio.sleep(0.1)
        server.close()
        return answers, errors

    answers, errors = asyncio.run(main())
    assert all(a.startswith(b"HTTP/1.1 400") for a in answers), answers[0][:60]
    assert not errors, f"{len(errors)} unhandled exceptions, e.g. {errors[0]}"


def test_refused_pipelined_connections_stay_within_the_cap() -> None:
    """A wrong token with one more byte after it (pipelined) is answered 401, then lingers
    reading: it was no longer counted, so strangers held any number of sockets past the cap."""

    async def main() -> int:
        server = await _server(cap=4)
        port = server.sockets[0].getsockname()[1]
        held = []
        for _ in range(40):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer no\r\n\r\nX")
            held.append((r, w))
        await asyncio.sleep(0.5)  # every request read and answered, well within LINGER_S
        alive = _handlers()
        for _, w in held:
            w.close()
        server.close()
        await asyncio.sleep(0.1)
        return alive

    alive = asyncio.run(main())
    assert alive <= 2 * 4, f"{alive} handlers (open sockets) alive, cap 4"


def test_a_stranger_announcing_a_body_is_refused_before_the_node_reads_it() -> None:
    """The token is checked before a body is read: a stranger announcing 4 MiB gets its 401 at
    once, without the node waiting for (and buffering) the body."""

    async def main() -> bytes:
        server = await _server(timeout_s=3.0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        size = control.MAX_BODY
        w.write(f"POST /info HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode() + b"{")
        answer = await asyncio.wait_for(r.read(200), 10)
        w.close()
        server.close()
        return answer

    assert asyncio.run(main()).startswith(b"HTTP/1.1 401")
