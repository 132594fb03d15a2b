"""What one write costs on the embedded database, by shape: the numbers behind the read model's design.

    python -m bench.store_ops

Starts its own SecantusDB on a free port (data in a temporary folder, nothing else on it) and prints:
inserts/s by number of secondary indexes and document size, and updates/s of a job-shaped document
on a collection with the `jobs` indexes, by write form (`$set` or replacement, filtered by `_id` alone
or by `_id` and `version`, or `$set` by `_id` with the version guard in an update pipeline, as the
projector writes), and reads of one job document by `{_id}` or `{_id, tenant}`. One client, bulk
writes, as the projector writes.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient, ReplaceOne, UpdateOne

from sitewright_devstack.infra import free_port, mongo_url, start_mongo
from sitewright_gateway.readmodel.writer import guarded_set

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JOBS_INDEXES = [  # the two `Store.create_indexes` makes, then the one it dropped on 2026-12-02
    ([("status", 1), ("tenant", 1), ("_id", -1)], {}),
    ([("due_at", 1)], {"name": "due", "partialFilterExpression": {"due_at": {"$gte": EPOCH}}}),
    ([("tenant", 1), ("_id", -1)], {}),
]
CURRENT = 2


def job(i: int) -> dict:
    return {
        "_id": f"job{i:09d}",
        "tenant": "default",
        "status": "pending",
        "version": 1,
        "created_at": datetime.now(UTC),
        "published": True,
        "options": {"max_pages": 10, "max_depth": 2, "timeout_s": 60.0, "scope": "host"},
        "notify": [],
        "log": ["2026-11-23T17:55:14+00:00 crawl.started (attempt 1): crawling http://127.0.0.1/"] * 6,
        "seen": ["01a2098c-37ec-7967-a0e1-66ad71ace589"] * 6,
        "action": None,
        "due_at": None,
    }


def inserts_per_s(db, indexes: int, size: int, n: int = 2000, batch: int = 200) -> float:
    c = db[f"ins_{indexes}_{size}"]
    for k in range(indexes):
        c.create_index([(f"f{k}", 1)])
    docs = [{"_id": f"{i:012d}", **{f"f{k}": i for k in range(indexes)}, "pad": "x" * size} for i in range(n)]
    started = time.perf_counter()
    for j in range(0, n, batch):
        c.insert_many(docs[j : j + batch], ordered=False)
    return n / (time.perf_counter() - started)


def jobs_collection(db, name: str, indexes: int, n: int) -> tuple[Any, list[dict]]:
    """A collection with the first `indexes` of the `jobs` indexes and `n` job documents in it."""
    c = db[name]
    for keys, options in JOBS_INDEXES[:indexes]:
        c.create_index(keys, **options)
    docs = [job(i) for i in range(n)]
    c.insert_many(docs)
    return c, docs


def updates_per_s(db, indexes: int, form: str, guarded: bool, n: int = 1500, rounds: int = 2) -> float:
    """`form` is "set", "replace" or "pipeline" (`guarded_set`: filtered by `_id`, guarded in the update)."""
    c, docs = jobs_collection(db, f"upd_{indexes}_{form}_{guarded}", indexes, n)
    started = time.perf_counter()
    for r in range(rounds):
        change = {
            "status": ("crawling", "generating")[r % 2],
            "version": 2 + r,
            "log": ["x" * 90] * (7 + r),
            "position": {"partition": 1, "offset": r},
        }
        ops = []
        for d in docs:
            where = {"_id": d["_id"], "version": 1 + r} if guarded else {"_id": d["_id"]}
            if form == "pipeline":
                ops.append(UpdateOne({"_id": d["_id"]}, guarded_set(1 + r, change)))
            else:
                ops.append(UpdateOne(where, {"$set": change}) if form == "set" else ReplaceOne(where, d | change))
        assert c.bulk_write(ops, ordered=False).modified_count == n
    return n * rounds / (time.perf_counter() - started)


def reads_per_s(db, query: str, n: int = 1500) -> float:
    """`find_one` of a job document one at a time (as `GET /api/jobs/{id}` reads it), by `{_id}` or `{_id, tenant}`."""
    c, docs = jobs_collection(db, f"read_{query}", CURRENT, n)
    started = time.perf_counter()
    for d in docs:
        c.find_one({"_id": d["_id"]} if query == "id" else {"_id": d["_id"], "tenant": d["tenant"]})
    return n / (time.perf_counter() - started)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_mongo(Path(tmp) / "data", Path(tmp), port)
        client = MongoClient(mongo_url(port))
        try:
            db = client["store_ops"]
            print("inserts/s, insert_many in batches of 200")
            print("| secondary indexes | 100 B | 2 KB | 20 KB |\n| --- | --- | --- | --- |")
            for indexes in (0, 1, 2, 3, 5):
                print(
                    f"| {indexes} | "
                    + " | ".join(f"{inserts_per_s(db, indexes, size):,.0f}" for size in (100, 2000, 20000))
                    + " |"
                )
            print(
                "\nupdates/s of a job document, bulk_write, with the first N of the `jobs` indexes "
                f"({CURRENT} is today's)"
            )
            print(
                "| indexes | $set by {_id, version} | $set by {_id} | replace by {_id, version} | replace by {_id} "
                "| $set by {_id}, version guard in a pipeline |"
            )
            print("| --- | --- | --- | --- | --- | --- |")
            for indexes in range(len(JOBS_INDEXES) + 1):
                cells = [
                    updates_per_s(db, indexes, form, guarded)
                    for form in ("set", "replace")
                    for guarded in (True, False)
                ]
                cells.append(updates_per_s(db, indexes, "pipeline", True))
                print(f"| {indexes} | " + " | ".join(f"{v:,.0f}" for v in cells) + " |")
            print("\nreads/s of a job document, find_one one at a time, with the `jobs` indexes")
            print(
                f"| by {{_id}} | {reads_per_s(db, 'id'):,.0f} |\n"
                f"| by {{_id, tenant}} | {reads_per_s(db, 'id_tenant'):,.0f} |"
            )
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
