"""Serve the bundled sample website (or any folder) over HTTP on loopback, in a background thread."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SAMPLE_SITE = Path(__file__).with_name("sample_site")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a hundred crawls opening connections at once would see
    # dropped SYNs, retransmitted a second or more later, and time out on a site that is only busy.
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        # A crawler that has what it needs (or was killed) hangs up mid-response: not the site's error.
        pass


class StaticSite:
    """`with StaticSite() as site: site.url` serves `root` until the block ends."""

    def __init__(self, root: Path = SAMPLE_SITE, host: str = "127.0.0.1", port: int = 0):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = _QuietServer((host, port), handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
