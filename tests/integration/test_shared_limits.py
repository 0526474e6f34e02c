"""Rate limits shared through Redis: two `kb serve` processes count one bucket (issue 24).

Runs against the machine's Redis (``KB_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``)
and skips when none answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from kb.api.limits import RedisBucket
from tests.server_process import Served, get, light_env, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes
REDIS_URL = os.environ.get("KB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted afterwards."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:  # not installed, not running, refused: not here
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({type(exc).__name__}: {exc})")
    prefix = f"kb-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def _two_servers(tmp_path: Path, stack: ExitStack, **env: str) -> list[Served]:
    servers = []
    for n in (1, 2):
        settings = light_env(tmp_path / f"var{n}", **env)
        servers.append(stack.enter_context(serve(settings, tmp_path / f"serve{n}.log")))
    return servers


def _statuses(servers: list[Served], requests: int, headers: dict[str, str]) -> list[int]:
    """``requests`` requests alternating between the servers: their status codes."""
    out = []
    for i in range(requests):
        status, resp_headers, _ = get(f"{servers[i % 2].url}/api/documents", headers)
        if status == 429:
            assert int(resp_headers["retry-after"]) >= 1
        out.append(status)
    return out


def test_two_processes_share_the_address_bucket(tmp_path: Path, redis_prefix: str) -> None:
    with ExitStack() as stack:
        servers = _two_servers(
            tmp_path,
            stack,
            KB_REDIS_URL=REDIS_URL,
            KB_REDIS_PREFIX=redis_prefix,
            KB_LIMITS__ADDRESS_PER_MINUTE="1",
            KB_LIMITS__ADDRESS_BURST="6",
        )
        # Anonymous requests (401) count against the address: 6 across both, then 429.
        statuses = _statuses(servers, 10, {})
        assert statuses == [401] * 6 + [429] * 4, statuses


def test_two_processes_share_the_user_bucket(tmp_path: Path, redis_prefix: str) -> None:
    with ExitStack() as stack:
        servers = _two_servers(
            tmp_path,
            stack,
            KB_REDIS_URL=REDIS_URL,
            KB_REDIS_PREFIX=redis_prefix,
            KB_LIMITS__USER_PER_MINUTE="1",
            KB_LIMITS__USER_BURST="4",
            KB_AUTH__DEV_HEADERS="true",
        )
        user = {"X-User-Id": "shared-user", "X-User-Roles": "employee"}
        statuses = _statuses(servers, 8, user)
        assert statuses == [200] * 4 + [429] * 4, statuses
        # Another user has a bucket of their own.
        other = _statuses(servers, 2, {**user, "X-User-Id": "other-user"})
        assert other == [200, 200], other


def test_without_redis_each_process_counts_its_own(tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = _two_servers(
            tmp_path, stack, KB_LIMITS__ADDRESS_PER_MINUTE="1", KB_LIMITS__ADDRESS_BURST="3"
        )
        statuses = _statuses(servers, 8, {})
        assert statuses.count(429) == 2, statuses  # 3 + 3 allowed: twice the configured limit


def test_redis_down_falls_back_to_this_process(caplog: pytest.LogCaptureFixture) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    bucket = RedisBucket(client, "kb:rate:address", per_minute=1, burst=2)
    assert [bucket.take("a") is None for _ in range(3)] == [True, True, False]
    assert "Redis unavailable" in caplog.text
