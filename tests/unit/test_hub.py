"""The hub's per-connection rules without I/O: ordering, de-duplication, gap filling, dropping slow clients."""

from __future__ import annotations

import asyncio

from sitewright_gateway.streams.connection import Connection
from sitewright_gateway.streams.messages import CLOSE_TOO_SLOW, Update
from sitewright_gateway.web.auth import Principal

ALICE = Principal(key_id="k1", tenant="alice", admin=False)


def update(version: int, job_id: str = "j1") -> Update:
    job = {
        "status": "crawling",
        "stage": "crawl",
        "progress": 10 + version,
        "attempt": 1,
        "error": None,
        "url": "https://a.example/",
    }
    return Update.from_event(
        {
            "_id": f"e{version}",
            "job_id": job_id,
            "tenant": "alice",
            "type": "crawl.progress",
            "version": version,
            "job": job,
        }
    )


class AuditTrail:
    """Stands in for the hub: answers a connection's gap fill from a fixed list of versions."""

    def __init__(self, versions: list[int]):
        self.versions = versions
        self.asked: list[int] = []

    async def backfill(self, conn: Connection, job_id: str, after: int) -> None:
        self.asked.append(after)
        conn.release(job_id, [update(v, job_id) for v in self.versions if v > after])


async def drain(conn: Connection) -> list[int]:
    return [item.version for item in await conn.take(0.01) if isinstance(item, Update)]


async def test_backlog_then_held_live_updates_in_order_without_duplicates():
    conn = Connection(AuditTrail([]), ALICE, limit=100)  # type: ignore[arg-type]
    conn.hold("j1")
    for v in (4, 3, 5):  # live updates that arrive while the backlog is read, one out of order
        conn.offer(update(v))
    conn.release("j1", [update(v) for v in (3, 4)], resumed_from=2)
    conn.offer(update(5))
    conn.offer(update(6))
    assert await drain(conn) == [3, 4, 5, 6]


async def test_a_skipped_live_version_is_read_from_the_audit_trail_first():
    trail = AuditTrail([3, 4, 5, 6])
    conn = Connection(trail, ALICE, limit=100)  # type: ignore[arg-type]
    conn.release("j1", [update(3)])
    conn.offer(update(6))  # 4 and 5 not seen live yet
    conn.offer(update(5))
    await asyncio.sleep(0)  # let the fill run
    await asyncio.sleep(0)
    assert trail.asked == [3]
    assert await drain(conn) == [3, 4, 5, 6]


async def test_a_client_that_falls_behind_is_dropped_and_others_are_not():
    slow = Connection(AuditTrail([]), ALICE, limit=5)  # type: ignore[arg-type]
    fast = Connection(AuditTrail([]), ALICE, limit=5)  # type: ignore[arg-type]
    slow.release("j1", [])
    fast.release("j1", [])
    for v in range(1, 9):
        slow.offer(update(v))
        fast.offer(update(v))
        assert await drain(fast) == [v]
    assert slow.closed is not None and slow.closed[:2] == (CLOSE_TOO_SLOW, "too_slow")
    assert slow.done.is_set() and fast.closed is None


async def test_an_idle_connection_times_out_for_a_heartbeat_and_encodes_each_update_once():
    conn = Connection(AuditTrail([]), ALICE, limit=5)  # type: ignore[arg-type]
    assert await conn.take(0.01) == []
    u = update(1)
    assert u.text is u.text and u.sse.startswith(b"id: j1:1\nevent: job\ndata: {")
