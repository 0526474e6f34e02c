"""``kb serve`` in a child process on a free port, for the tests that need a real server
(JSON logs, shared rate limits across processes, the installed wheel)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def light_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A fast service: the hash embedder, ingestion in process, a private data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(OFFLINE)
    env.update(
        {
            "KB_DATA_DIR": str(data_dir),
            "KB_EMBEDDER__MODELS": '["hash"]',
            "KB_INGEST__ISOLATED": "false",
            "KB_DOCS_DIR": str(data_dir / "docs"),
        }
    )
    env.update(extra)
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve(
    env: Mapping[str, str],
    log_path: Path,
    *,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
    timeout: float = 120.0,
) -> Iterator[Served]:
    """``kb serve`` (or ``command`` + port arguments) until ``/healthz`` answers; stopped
    with SIGTERM (uvicorn's graceful shutdown) afterwards. Its stderr goes to ``log_path``."""
    port = port or free_port()
    cmd = list(command or [sys.executable, "-m", "kb.cli.main"])
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            cmd, env=dict(env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"kb serve exited {process.returncode}:\n{log_path.read_text()[-3000:]}"
                    )
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        tail = log_path.read_text()[-3000:]
                        raise RuntimeError(f"no answer in {timeout} s:\n{tail}") from None
                    time.sleep(0.3)
            yield Served(process, url, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET that returns the status of an error response instead of raising."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
