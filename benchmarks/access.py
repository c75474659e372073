"""What keys and rate limits add to every request, measured in one process.

    .venv/bin/python -m benchmarks.access [--write]

Times the pieces ``api.auth`` runs before a view: checking a key (cached, and a store lookup
on SQLite), and one rate-limit count in memory (embedded mode) and in Redis (127.0.0.1:6379,
database 12, flushed; skipped with a note when Redis is not running). Medians of 5 runs.
``--write`` records the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from api.keys import KeyRing, RateLimits
from automl.access import new_key
from automl.store import Store, api_keys
from benchmarks._docs import write_section

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
REDIS = "redis://127.0.0.1:6379/12"
SERVING_P50_US = 1860.0  # 1-row predict under gunicorn, one client: the Serving section of docs/benchmarks.md


def median_us(call: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(repeat):
            call()
        runs.append((time.perf_counter() - began) / repeat * 1e6)
    return statistics.median(runs)


def measure() -> dict[str, float | str]:
    folder = Path(tempfile.mkdtemp())
    store = Store(f"sqlite:///{folder / 'keys.db'}")
    store.migrate()
    key = new_key()
    with store.session() as session:
        api_keys.add_key(session, key.key_id, key.digest, "bench", "write", None)
    cached, uncached = KeyRing(store, ttl_s=60), KeyRing(store, ttl_s=0)
    cached.caller(key.secret)
    figures: dict[str, float | str] = {
        "key_cached_us": median_us(lambda: cached.caller(key.secret), 20_000),
        "key_lookup_us": median_us(lambda: uncached.caller(key.secret), 500),
    }
    memory = RateLimits("memory://", {"predict": "1000000/second"})
    figures["limit_memory_us"] = median_us(lambda: memory.hit("predict", key.key_id), 20_000)
    try:
        import redis

        redis.Redis.from_url(REDIS).flushdb()
        shared = RateLimits(REDIS, {"predict": "1000000/second"})
        figures["limit_redis_us"] = median_us(lambda: shared.hit("predict", key.key_id), 2_000)
        redis.Redis.from_url(REDIS).flushdb()
    except Exception as exc:  # no Redis here: say so rather than print a number
        figures["limit_redis_us"] = f"not measured ({type(exc).__name__})"
    return figures


def report(figures: dict[str, float | str]) -> str:
    def shown(value: float | str) -> str:
        if not isinstance(value, float):
            return value
        return f"{value:.1f} ({100 * value / SERVING_P50_US:.1f} % of a 1-row predict)"

    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores, in one process "
        "(`python -m benchmarks.access`), medians of 5 runs. What `api.auth` adds before every `/api/v1` "
        "and `/v1` view:",
        "",
        "| step | µs per request (share of the 1.86 ms p50 of a 1-row predict under gunicorn) |",
        "|---|---|",
        f"| key check, cached (SHA-256 + a dict; every request within `AUTOML_KEY_CACHE_S`) | "
        f"{shown(figures['key_cached_us'])} |",
        f"| key check, store lookup (SQLite; once per key and process every `AUTOML_KEY_CACHE_S`) | "
        f"{shown(figures['key_lookup_us'])} |",
        f"| rate-limit count, memory (embedded mode; predict, upload and job routes only) | "
        f"{shown(figures['limit_memory_us'])} |",
        f"| rate-limit count, Redis on the same machine (one script call) | {shown(figures['limit_redis_us'])} |",
        "",
        "The 1.86 ms is the Serving section's one-client p50, measured before keys existed; a Redis count is "
        "a network round trip, so it grows with the distance to Redis. Set `AUTOML_RATE_LIMIT_PREDICT=` "
        "(empty) where predictions need no limit.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    args = parser.parse_args()
    figures = measure()
    text = report(figures)
    print(text)
    if args.write:
        write_section(DOCS, "access", "Keys and rate limits", text)


if __name__ == "__main__":
    main()
