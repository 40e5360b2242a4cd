"""Durable (`always`) appends through the Python APIs: appends/s, p50 and p99 per acknowledged event.

    python python/bench/append.py [--events N] [--dir DIR]

Rows (one JSON object per line):
- `python blocking durable 1 guild`: `Journal.append`, one event after another;
- `python blocking none 1 guild`: the same at durability `none` (the binding's own cost: dict ->
  JSON -> Event, the fold, no fsync);
- `python asyncio durable 1 guild`: `await Reprise.append`, one event after another;
- `python asyncio durable 64 guilds`: 64 asyncio tasks, one guild each (group commit).
Compare with the Rust figures in the same session: `reprise bench --quick --json`, rows
`reprise durable 1 guild` and `reprise durable 64 guilds`.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time

import reprise


def event(n):
    # The queue stays short, as in the Rust row: enqueue, then remove it again.
    if n % 2 == 0:
        return {
            "type": "tracks_enqueued",
            "tracks": [{"encoded": "QAAAjQIAJVJpY2sg" * 8, "title": "Never Gonna Give You Up"}],
        }
    return {"type": "track_removed", "index": 0}


def row(name, events, elapsed, latencies):
    latencies = sorted(latencies)
    return {
        "name": name,
        "events": events,
        "appends_per_s": round(events / elapsed, 1),
        "p50_us": round(statistics.median(latencies) * 1e6, 1),
        "p99_us": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1e6, 1),
    }


def blocking(d, events, durability):
    with reprise.Journal(d) as journal:
        latencies = []
        start = time.perf_counter()
        for n in range(events):
            e = event(n)
            t0 = time.perf_counter()
            journal.append(1, e, durability=durability)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    return row(f"python blocking {durability} 1 guild", events, elapsed, latencies)


async def asyncio_rows(d, events):
    rows = []
    async with await reprise.open(d) as r:
        latencies = []
        start = time.perf_counter()
        for n in range(events):
            e = event(n)
            t0 = time.perf_counter()
            await r.append(1, e)
            latencies.append(time.perf_counter() - t0)
        rows.append(row("python asyncio durable 1 guild", events, time.perf_counter() - start, latencies))

        latencies = []
        per_task = max(events // 64, 1)

        async def task(guild):
            for n in range(per_task):
                e = event(n)
                t0 = time.perf_counter()
                await r.append(guild, e)
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(task(100 + g) for g in range(64)))
        rows.append(
            row("python asyncio durable 64 guilds", per_task * 64, time.perf_counter() - start, latencies)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="parent directory (default: the temp dir)")
    args = parser.parse_args()
    rows = []
    for durability in ("always", "none"):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            rows.append(blocking(d, args.events, durability))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        rows.extend(asyncio.run(asyncio_rows(d, args.events)))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
