"""Helpers shared by test fixtures that run the real app over HTTP."""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app, name: str = "test-uvicorn") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_healthy(proc: subprocess.Popen, url: str, logs: Path, seconds: float = 60) -> None:
    """Until the API process ``proc`` answers 200 on ``url``/healthz; fails with the
    ``*.log`` files of ``logs`` when it exits or takes longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            text = "\n".join(p.read_text() for p in logs.glob("*.log"))
            raise AssertionError(f"an API process did not come up:\n{text}")
        time.sleep(0.1)
def wait_until_up(up, timeout: float = 120) -> str:
    """Until a `ledger up` in a subprocess (``up.proc``, its output so far ``up.text()``)
    says it is up; its output then. If it exits or times out first: ``up.kill()``, and fail
    showing the output."""
    deadline = time.monotonic() + timeout
    while "ledger: up." not in up.text():
        if up.proc.poll() is not None or time.monotonic() > deadline:
            up.kill()
            raise AssertionError(f"ledger up did not come up:\n{up.text()}")
        time.sleep(0.2)
    return up.text()
