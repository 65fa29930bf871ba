"""A bounded HTTP/1.1 load on loopback: ``clients`` keep-alive connections, each sending
its requests one after another (asyncio and raw sockets: no client library needed)."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


class UnexpectedAnswer(RuntimeError):
    """A request of the load got another status than the one the load measures."""


@dataclass
class Load:
    """Latencies of every request, in seconds, and the wall time of the whole load."""

    latencies: list[float]
    seconds: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


def run_load(port: int, path: str, headers: dict[str, str], clients: int,
             requests_per_client: int, expect: int = 200) -> Load:
    """Drive ``clients`` concurrent connections to 127.0.0.1:``port``; any answer but
    ``expect`` is an error (the load measures the answer it was asked to, not a redirect;
    204 and 304 are a poll's answers for an unchanged list)."""
    return asyncio.run(_load(port, path, headers, clients, requests_per_client, expect))


async def _load(port: int, path: str, headers: dict[str, str], clients: int,
                count: int, expect: int) -> Load:
    request = _request(path, headers)
    started = time.monotonic()
    per_client = await asyncio.gather(
        *(_client(port, request, count, expect) for _ in range(clients)))
    return Load([seconds for client in per_client for seconds in client],
                time.monotonic() - started)


def _request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _client(port: int, request: bytes, count: int, expect: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    try:
        for _ in range(count):
            started = time.monotonic()
            writer.write(request)
            await _response(reader, expect)
            latencies.append(time.monotonic() - started)
    finally:
        writer.close()
    return latencies


async def _response(reader: asyncio.StreamReader, expect: int) -> bytes:
    """Read one response (Content-Length or chunked) and return its body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status, *header_lines = head.split("\r\n")
    if status.split()[1] != str(expect):
        raise UnexpectedAnswer(f"load request answered {status!r}, not {expect}")
    if expect in (204, 304):
        return b""  # no body, whatever the headers say
    fields = {name.strip().lower(): value.strip() for name, _, value in
              (line.partition(":") for line in header_lines if line)}
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() == "chunked":
        return await _chunked(reader)
    raise RuntimeError("response without Content-Length or chunked encoding")


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readline()).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()  # the empty trailer
    return bytes(body)
