"""Durable (`always`) appends through the blocking Python API: appends/s and p50 latency.

    python python/bench/append.py [--events N] [--dir DIR]

Compare with the Rust figure: `reprise bench --quick --json`, row `reprise durable 1 guild`.
The asyncio API is not bound yet, so only the blocking handle is measured.
"""

import argparse
import json
import statistics
import tempfile
import time

import reprise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="parent directory (default: the temp dir)")
    args = parser.parse_args()
    event = {
        "type": "tracks_enqueued",
        "tracks": [{"encoded": "QAAAjQIAJVJpY2sg" * 8, "title": "Never Gonna Give You Up"}],
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        with reprise.Journal(d) as journal:
            latencies = []
            start = time.perf_counter()
            for _ in range(args.events):
                t0 = time.perf_counter()
                journal.append(1, event, durability="always")
                latencies.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "name": "python blocking durable 1 guild",
                "events": args.events,
                "appends_per_s": round(args.events / elapsed, 1),
                "p50_us": round(statistics.median(latencies) * 1e6, 1),
                "p99_us": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1e6, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
