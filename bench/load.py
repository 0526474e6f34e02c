"""Load test of ``POST /api/ask`` (issue 8): N concurrent users against ``kb serve`` on loopback.

    .venv/bin/python -m bench.load                  # 20 users x 60 s
    .venv/bin/python -m bench.load --soak 600        # 10-minute soak, RSS every 10 s

It prepares a data folder with the sample corpus (``--data-dir``, ingested once), creates one
local user and API token per simulated user, starts ``kb serve`` on a free loopback port with
the rate limits raised (the point is the service's capacity, not the limiter's), and drives it
with asyncio + httpx, each user asking the sample questions in turn without think time.
Prints p50/p95/p99 latency, throughput and errors; with ``--soak``, the server's RSS every
10 s and its drift. A benchmark, not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
KB = str(ROOT / ".venv" / "bin" / "kb")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _questions() -> list[str]:
    cases = ROOT / "eval" / "cases" / "sample.jsonl"
    return [json.loads(line)["text"] for line in cases.read_text().splitlines() if line.strip()]


def _prepare(env: dict[str, str], users: int) -> list[str]:
    data = Path(env["KB_DATA_DIR"])
    if not (data / "qdrant").exists():
        print(f"ingesting docs_corpus/ into {data} ...", flush=True)
        subprocess.run([KB, "ingest", str(ROOT / "docs_corpus")], env=env, check=True)
    tokens = []
    existing = subprocess.run(
        [KB, "users", "list", "--json"], env=env, check=True, capture_output=True, text=True
    )
    known = {u["id"] for u in json.loads(existing.stdout)}
    for i in range(users):
        uid = f"load-{i:03d}"
        if uid not in known:
            subprocess.run([KB, "users", "add", uid], env=env, check=True, capture_output=True)
        out = subprocess.run(
            [KB, "tokens", "create", uid, "--name", "load test", "--days", "1", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        tokens.append(json.loads(out.stdout)["token"])
    return tokens


async def _user(
    base: str,
    token: str,
    questions: list[str],
    offset: int,
    stop: float,
    out: list[tuple[float, int | str]],
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        i = offset
        while time.monotonic() < stop:
            q = questions[i % len(questions)]
            i += 1
            t0 = time.perf_counter()
            try:
                resp = await http.post("/api/ask", json={"question": q})
                out.append((time.perf_counter() - t0, resp.status_code))
            except httpx.HTTPError as exc:
                out.append((time.perf_counter() - t0, type(exc).__name__))


async def _sample_rss(pid: int, stop: float, every: float, rss: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while time.monotonic() < stop:
        rss.append((time.monotonic() - start, _rss_mb(pid)))
        print(f"  t={rss[-1][0]:5.0f}s  rss={rss[-1][1]:7.1f} MB", flush=True)
        await asyncio.sleep(every)
    rss.append((time.monotonic() - start, _rss_mb(pid)))


async def _run(base: str, tokens: list[str], seconds: float, pid: int) -> dict[str, Any]:
    questions = _questions()
    # Warm-up: one question per user, not measured (first-call costs, token last_used writes).
    warm: list[tuple[float, int | str]] = []
    await asyncio.gather(
        *(_user(base, t, questions, i, time.monotonic() + 0.1, warm) for i, t in enumerate(tokens))
    )
    results: list[tuple[float, int | str]] = []
    rss: list[tuple[float, float]] = []
    stop = time.monotonic() + seconds
    t0 = time.monotonic()
    tasks = [_user(base, t, questions, i * 3, stop, results) for i, t in enumerate(tokens)]
    tasks.append(_sample_rss(pid, stop, 10.0, rss))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    lat = sorted(r[0] * 1000 for r in results if r[1] == 200)
    errors = [r[1] for r in results if r[1] != 200]

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    report = {
        "users": len(tokens),
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "ok": len(lat),
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors}),
        "throughput_rps": round(len(results) / elapsed, 2),
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
    }
    if rss:
        first = [m for t, m in rss if t <= 60] or [rss[0][1]]
        last = [m for t, m in rss if t >= rss[-1][0] - 60] or [rss[-1][1]]
        report["rss_mb"] = {
            "start": round(rss[0][1], 1),
            "end": round(rss[-1][1], 1),
            "max": round(max(m for _, m in rss), 1),
            "first_minute_mean": round(statistics.fmean(first), 1),
            "last_minute_mean": round(statistics.fmean(last), 1),
            "drift_mb": round(statistics.fmean(last) - statistics.fmean(first), 1),
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", type=float, default=None, help="Soak for this many seconds.")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "load-test")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON only.")
    args = parser.parse_args()
    seconds = args.soak or args.seconds
    env = {
        **os.environ,
        "KB_DATA_DIR": str(args.data_dir.resolve()),
        "KB_EMBEDDING_CACHE": str(ROOT / ".pytest_cache" / "kb-embeddings.sqlite3"),
        "KB_LIMITS__USER_PER_MINUTE": "0",
        "KB_LIMITS__ADDRESS_PER_MINUTE": "0",
        "HF_HUB_OFFLINE": "1",
    }
    tokens = _prepare(env, args.users)
    port = _free_port()
    server = subprocess.Popen(
        [KB, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode() if server.stderr else ""
                print(f"the server did not start:\n{err[-2000:]}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"{args.users} users x {seconds:.0f} s against {base} (pid {server.pid})", flush=True)
        report = asyncio.run(_run(base, tokens, seconds, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
