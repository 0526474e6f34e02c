"""p50/p95 of POST /api/ask over the sample example questions, against a running service.

Usage: .venv/bin/python scripts/ask_latency.py [BASE_URL]   (default http://127.0.0.1:8000)

94 questions in a row exceed the per-user rate limit: start the service for this measurement
with ``KB_LIMITS__USER_PER_MINUTE=0 KB_LIMITS__ADDRESS_PER_MINUTE=0`` (and the development
identity headers, ``KB_AUTH__DEV_HEADERS=true``, as ``make serve`` does).
"""

import json
import statistics
import sys
import time
from pathlib import Path

import httpx

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
cases = [
    json.loads(line)
    for line in (Path(__file__).parent.parent / "eval/cases/sample.jsonl").read_text().splitlines()
    if line.strip()
]
times = []
with httpx.Client(base_url=base, timeout=30) as client:
    client.post("/api/ask", json={"question": "warm up"})
    for case in cases:
        headers = {"X-User-Id": "latency", "X-User-Groups": ",".join(case.get("groups") or [])}
        t0 = time.perf_counter()
        resp = client.post("/api/ask", json={"question": case["text"]}, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code == 429:
            sys.exit(
                "rate limited (429): start the service with"
                " KB_LIMITS__USER_PER_MINUTE=0 KB_LIMITS__ADDRESS_PER_MINUTE=0"
            )
        resp.raise_for_status()
times.sort()
p95 = times[int(0.95 * (len(times) - 1))]
print(f"{len(times)} questions: p50 {statistics.median(times):.0f} ms, p95 {p95:.0f} ms")
