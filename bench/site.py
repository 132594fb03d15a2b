"""One-page websites on loopback for the benchmark, in their own process.

`python -m bench.site PORTFILE [DELAY_S]` serves a fast site and a slow one
(every answer of the slow one waits DELAY_S, for the head-of-line scenario)
and writes their two ports to PORTFILE. A raw asyncio server keeps the site
cheap, so the CPU it takes is not counted against the crawler it feeds.
"""

from __future__ import annotations

import asyncio
import json
import sys

PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Crumb &amp; Co | Sourdough bakery in Leeds</title>
<meta name="description" content="Sourdough bread, pastries and baking classes in Leeds, baked daily.">
</head><body><h1>Crumb &amp; Co bakery</h1>
<h2>Our bread</h2><p>We bake sourdough bread every morning with flour from a local mill. Our loaves rise
for thirty hours, which gives them their open crumb and deep crust. Every loaf is shaped by hand.</p>
<h2>Pastries</h2><p>Croissants, cinnamon buns and seasonal fruit tarts come out of the oven at seven.
The pastry is laminated with butter from a farm twenty miles away.</p>
<h2>Baking classes</h2><p>On Saturdays we teach sourdough baking to small groups. You take home a
starter, your own loaf and the recipe. Classes last four hours and include lunch.</p>
<h2>How long does a sourdough starter keep?</h2><p>Fed once a week and kept in the fridge, a starter
keeps for years. Ours is twelve years old.</p>
</body></html>"""
ROBOTS = b"User-agent: *\nAllow: /\n"


def _response(status: bytes, body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


RESPONSES = {
    b"/": _response(b"200 OK", PAGE, b"text/html; charset=utf-8"),
    b"/robots.txt": _response(b"200 OK", ROBOTS, b"text/plain"),
}
NOT_FOUND = _response(b"404 Not Found", b"not found", b"text/plain")


def handler(delay_s: float):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one connection serves many requests
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].split(b"?", 1)[0]
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(RESPONSES.get(path, NOT_FOUND))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    return serve


async def main(port_file: str, delay_s: float) -> None:
    fast = await asyncio.start_server(handler(0), "127.0.0.1", 0, backlog=1024)
    slow = await asyncio.start_server(handler(delay_s), "127.0.0.1", 0, backlog=1024)
    ports = {"fast": fast.sockets[0].getsockname()[1], "slow": slow.sockets[0].getsockname()[1]}
    with open(port_file, "w") as f:
        json.dump(ports, f)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 20.0))
