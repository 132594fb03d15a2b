"""Scenario 3: the API under load. POST /api/jobs at 200/s, then GET /api/jobs/{id} at 500/s."""

from __future__ import annotations

from ..common import Bench, ms, quantile


def _stats(phase: dict, ok: tuple[int, ...]) -> dict:
    lat = [r[1] for r in phase["requests"]]
    errors = sum(1 for r in phase["requests"] if r[2] not in ok)
    return {
        "requests": len(lat),
        "errors": errors,
        "p50_ms": ms(quantile(lat, 0.5)),
        "p99_ms": ms(quantile(lat, 0.99)),
        "client_max_lag_ms": phase["max_lag_ms"],
    }


async def run(bench: Bench, ids: list[str], duration_s: float, post_rate: float = 200, get_rate: float = 500) -> dict:
    post, get = await bench.load(
        [
            {"kind": "post", "rate": post_rate, "duration": duration_s, "site": bench.sites["fast"]},
            {"kind": "get", "rate": get_rate, "duration": duration_s, "ids": ids},
        ]
    )
    # Let the jobs the POSTs created finish, so that the next scenario starts on a quiet system.
    await bench.watcher.wait_for([r[3] for r in post["requests"] if r[3]], 120)
    return {"post": _stats(post, (202,)), "get": _stats(get, (200,))}
