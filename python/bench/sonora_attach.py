"""Per-mutation cost of a durable py-sonora player: reprise.sonora.attach vs py-sonora's own writer.

    python python/bench/sonora_attach.py [--mutations N] [--queue 1000] [--dir DIR]

A real py-sonora 1.2.8 `Player` with a 1,000-track queue goes through the same mutation cycle
(volume, pause/resume, seek, queue move, add + pop, skip + add: the queue stays at 1,000 tracks)
in each row; one JSON object per line with `mutations_per_s`, `p50_us`, `p99_us` per mutation as
the bot sees it (from the call to its return, persistence included):

- `py-sonora in memory`: the mutations alone (no persistence);
- `reprise attach always`: `reprise.sonora.attach(player, Journal, "always")` (each mutation
  fsynced before the call returns);
- `reprise attach none`: the same at durability `none` (the attachment's own cost: the diff
  against the mirror, the events, the binding; no fsync);
- `reprise attach asyncio always`: the same over `await reprise.open(...)`;
- `py-sonora save_snapshot`: `manager.save_snapshot(manager.create_snapshot(player))` after each
  mutation, py-sonora 1.2.8's own writer as it is (not atomic, never fsynced: a crash can leave a
  truncated file or lose it);
- `py-sonora save_snapshot + fsync`: the same plus an fsync of the file written (the least a
  Sonora bot must add to be as durable as `always`).
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time

import reprise
import reprise.sonora as rs
from sonora import Player, SnapshotManager, Track


class Node:
    host = "lavalink.bench"

    async def send(self, op, **data):
        return None


def track(n):
    return Track(
        track="QAAAjQIAJVJpY2sgQXN0bGV5" * 6 + f"{n:06d}",
        info={
            "identifier": f"dQw4w9WgXc{n}",
            "isSeekable": True,
            "author": "Rick Astley",
            "length": 213_000 + n,
            "isStream": False,
            "position": 0,
            "title": f"Never Gonna Give You Up ({n})",
            "uri": f"https://youtube.com/watch?v=dQw4w9WgXc{n}",
            "artworkUrl": None,
            "isrc": None,
            "sourceName": "youtube",
        },
    )


async def new_player(queue_len):
    player = Player(1, Node())
    await player.connect(2, "session", "token")
    await player.queue.add_multiple([track(n) for n in range(queue_len + 1)])
    await player.skip()
    return player


async def mutate(player, i, spare):
    k = i % 6
    if k == 0:
        await player.set_volume(50 + i % 100)
    elif k == 1:
        await (player.resume() if player.paused else player.pause())
    elif k == 2:
        await player.seek((i * 997) % 200_000)
    elif k == 3:
        player.queue.move(i % 900, (i * 7) % 900)
    elif k == 4:
        await player.queue.add(spare[i % len(spare)], i % 500)
        await player.queue.pop(len(player.queue._upcoming) - 1)
    else:
        await player.skip()
        await player.queue.add(spare[i % len(spare)])


def row(name, latencies):
    latencies = sorted(latencies)
    return {
        "name": name,
        "mutations": len(latencies),
        "mutations_per_s": round(len(latencies) / sum(latencies), 1),
        "p50_us": round(statistics.median(latencies) * 1e6, 1),
        "p99_us": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1e6, 1),
    }


async def measure(player, mutations, after=None, flush=None):
    """Latency of each mutation (a sync `move` on an asyncio attachment includes its flush;
    persistence `after` runs inside the timed span)."""
    spare = [track(10_000 + n) for n in range(64)]
    latencies = []
    for i in range(mutations):
        t0 = time.perf_counter()
        await mutate(player, i, spare)
        if flush is not None and i % 6 == 3:
            await flush()
        if after is not None:
            after(player)
        latencies.append(time.perf_counter() - t0)
    return latencies


async def run(args):
    rows = []
    player = await new_player(args.queue)
    rows.append(row("py-sonora in memory", await measure(player, args.mutations)))

    for durability in ("always", "none"):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            with reprise.Journal(d, history_max=100) as journal:
                player = await new_player(args.queue)
                rs.attach(player, journal, durability)
                lat = await measure(player, args.mutations)
                rows.append(row(f"reprise attach {durability}", lat))

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        async with await reprise.open(d, history_max=100) as r:
            player = await new_player(args.queue)
            handle = rs.attach(player, r)
            await handle.flush()
            lat = await measure(player, args.mutations, flush=handle.flush)
            rows.append(row("reprise attach asyncio always", lat))

    for fsync in (False, True):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            manager = SnapshotManager(d)
            player = await new_player(args.queue)

            def save(p, manager=manager, fsync=fsync):
                path = manager.save_snapshot(manager.create_snapshot(p))
                if fsync:
                    fd = os.open(path, os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)

            name = "py-sonora save_snapshot" + (" + fsync" if fsync else "")
            rows.append(row(name, await measure(player, args.mutations, after=save)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mutations", type=int, default=600)
    parser.add_argument("--queue", type=int, default=1000)
    parser.add_argument("--dir", default=None, help="parent directory (default: the temp dir)")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    attach = next(r for r in rows if r["name"] == "reprise attach always")
    for r in rows:
        r["p50_ratio_to_attach"] = round(r["p50_us"] / attach["p50_us"], 2)
        print(json.dumps(r))


if __name__ == "__main__":
    main()
