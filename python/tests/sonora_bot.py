"""A seeded bot driving a real py-sonora 1.2.8 `Player` (used by test_sonora.py).

`run_mutations(player, seed, count, after_each)` applies `count` seeded random mutations
(play, pause/resume, seek, volume, filters, queue add/pop/move/clear/shuffle, loop mode, skip,
stop, rewind, connect/disconnect, autoplay settings, shuffle flag); the choice of each depends
only on the seed and on the player's state, so a plain `Player` driven with the same seed goes
through exactly the same states as a journaled one.

As a script:
- `bot DIR SEED COUNT journal|asyncio`: opens the journal in DIR (history_max=100), attaches a
  fresh Player of guild GUILD, applies the mutations and prints each mutation's index on its own
  line once the call has returned (flushed);
- `restore DIR journal|asyncio`: restores a fresh Player from DIR and prints `player_state` of it
  as JSON.
"""

import asyncio
import json
import logging
import random
import sys

import reprise
import reprise.sonora as rs
from sonora import Player, Track
from sonora.exceptions import PlayerException
from sonora.filters import (
    ChannelMix,
    Distortion,
    Equalizer,
    Karaoke,
    LowPass,
    Rotation,
    Timescale,
    Tremolo,
    Vibrato,
)

# py-sonora's autoplay engine warns on every skip in autoplay mode (it has no strategy).
logging.getLogger("sonora").setLevel(logging.ERROR)

GUILD = 723381992870756382
TITLES = [f"Song {n}" for n in range(40)]


class FakeNode:
    """A Lavalink node standing in for `sonora.Node`: records what the player sends."""

    host = "lavalink.test"

    def __init__(self):
        self.sent = []

    async def send(self, op, **data):
        self.sent.append((op, data))


def make_track(rng, n):
    stream = rng.random() < 0.05
    return Track(
        track=f"QAAA{n:06d}" + "x" * rng.randrange(0, 40),
        info={
            "identifier": f"id{n}",
            "isSeekable": not stream,
            "author": rng.choice(["Ado", "Björk", "AC/DC", "蔡依林"]),
            "length": 0 if stream else rng.randrange(30_000, 600_000),
            "isStream": stream,
            "position": 0,
            "title": rng.choice(TITLES),
            "uri": f"https://example.test/{n}",
            "artworkUrl": None if rng.random() < 0.5 else f"https://img.test/{n}.jpg",
            "isrc": None,
            "sourceName": "youtube",
        },
    )


def make_filter(rng):
    kind = rng.randrange(9)
    u = rng.uniform
    if kind == 0:
        eq = Equalizer()
        for _ in range(rng.randrange(1, 4)):
            eq.set_band(rng.randrange(15), round(u(-0.25, 1.0), 3))
        return eq
    if kind == 1:
        return Karaoke(level=round(u(0, 1), 3), mono_level=round(u(0, 1), 3))
    if kind == 2:
        return Timescale(speed=round(u(0.5, 2), 3), pitch=round(u(0.5, 2), 3))
    if kind == 3:
        return Tremolo(frequency=round(u(0.1, 10), 3), depth=round(u(0.1, 1), 3))
    if kind == 4:
        return Vibrato(frequency=round(u(0.1, 14), 3), depth=round(u(0.1, 1), 3))
    if kind == 5:
        return Rotation(rotation_hz=round(u(-1, 1), 3))
    if kind == 6:
        return Distortion(scale=round(u(0, 2), 3))
    if kind == 7:
        return ChannelMix(left_to_right=round(u(0, 1), 3))
    return LowPass(smoothing=round(u(0, 50), 3))


async def run_mutations(player, seed, count, after_each, sync_now=None, between=None):
    """Applies `count` mutations; `after_each(i)` runs (awaited) once mutation i returned;
    `sync_now()` (awaited) journals a direct attribute write or a sync call on an asyncio
    handle. A mutation made of two player calls (pop, then play) is two acknowledged
    operations: `between(i)` (awaited) runs after the first, so that a test can tell the state
    a kill between them leaves (the pop journaled, the play not) from a torn one."""
    rng = random.Random(seed)
    random.seed(seed ^ 0x5EED)  # py-sonora's shuffle and smart_shuffle use the global random
    pool = [make_track(rng, n) for n in range(300)]
    q = player.queue

    async def settle():
        if sync_now is not None:
            await sync_now()

    for i in range(count):
        try:
            n_up = len(q._upcoming)
            r = rng.random()
            if r < 0.18 and n_up < 250:
                t = rng.choice(pool)
                if rng.random() < 0.5:
                    await q.add(t)
                else:
                    await q.add(t, rng.randrange(n_up + 1))
            elif r < 0.22 and n_up < 250:
                tracks = [rng.choice(pool) for _ in range(rng.randrange(1, 30))]
                pos = None if rng.random() < 0.5 else rng.randrange(n_up + 1)
                await q.add_multiple(tracks, pos)
            elif r < 0.28 and n_up:
                await q.pop(rng.randrange(n_up))
            elif r < 0.32 and n_up >= 2:
                q.move(rng.randrange(n_up), rng.randrange(n_up))
                await settle()
            elif r < 0.34 and n_up >= 2:
                q.shuffle()
                await settle()
            elif r < 0.35:
                await q.smart_shuffle()
            elif r < 0.36:
                await q.clear()
            elif r < 0.44:
                await player.skip()
            elif r < 0.46 and n_up:
                # py-sonora 1.2.8's queue.skip_to deadlocks (it awaits pop under the same
                # asyncio.Lock pop takes): skip to a position the way a bot can, pop then play.
                track = await q.pop(rng.randrange(n_up))
                if between is not None:
                    await between(i)
                if player.connected:
                    await player.play(track)
            elif r < 0.50 and player.connected:
                await player.play(rng.choice(pool))
            elif r < 0.51:
                await player.stop()
            elif r < 0.55:
                await (player.resume() if player.paused else player.pause())
            elif r < 0.61 and q.current is not None:
                length = q.current.info["length"]
                await player.seek(rng.randrange(length + 1) if length else rng.randrange(10**6))
            elif r < 0.66:
                await player.set_volume(rng.randrange(0, 1001))
            elif r < 0.69:
                q.set_loop_mode(rng.choice(["none", "track", "queue", "autoplay"]))
                await settle()
            elif r < 0.71:
                q.rewind()
                await settle()
            elif r < 0.76:
                player.filters.set_filter(make_filter(rng))
                await settle()
            elif r < 0.78 and player.filters.filters:
                player.filters.remove_filter(rng.choice(list(player.filters.filters)))
                await settle()
            elif r < 0.79:
                player.filters.clear_filters()
                await settle()
            elif r < 0.81:
                preset = rng.choice(["bass_boost", "nightcore", "vaporwave"])
                getattr(player.filters, preset)()
                await settle()
            elif r < 0.83:
                await player.set_filters()
            elif r < 0.86:
                player.autoplay.configure(
                    {
                        "enabled": rng.random() < 0.5,
                        "strategy": rng.choice(["similar_artist", "similar_genre", "popularity"]),
                        "max_history": rng.randrange(1, 100),
                        "smart_shuffle": rng.random() < 0.5,
                    }
                )
                await settle()
            elif r < 0.89:
                if player.connected:
                    await player.disconnect()
                else:
                    await player.connect(rng.randrange(1, 2**60), f"session-{i}", f"token-{i}")
            elif r < 0.91:
                q.shuffle_enabled = not q.shuffle_enabled
                await settle()
            elif not player.connected:
                await player.connect(rng.randrange(1, 2**60), f"session-{i}", f"token-{i}")
            else:
                await player.set_volume(rng.randrange(0, 1001))
        except PlayerException:
            pass  # e.g. skip while not connected: the queue advanced, the play failed
        await after_each(i)


async def _open(directory, kind):
    if kind == "asyncio":
        return await reprise.open(directory, history_max=100)
    return reprise.Journal(directory, history_max=100)


async def _bot(directory, seed, count, kind):
    journal = await _open(directory, kind)
    player = Player(GUILD, FakeNode())
    handle = rs.attach(player, journal)

    async def acked(i):
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()

    async def sync_now():
        await handle.flush()

    await run_mutations(player, seed, count, acked, sync_now)


async def _restore(directory, kind):
    journal = await _open(directory, kind)
    player = Player(GUILD, FakeNode())
    await rs.restore(player, journal)
    print(json.dumps(rs.player_state(player)))
    await journal.close() if kind == "asyncio" else journal.close()


def main(argv):
    if argv[0] == "bot":
        asyncio.run(_bot(argv[1], int(argv[2]), int(argv[3]), argv[4]))
    elif argv[0] == "restore":
        asyncio.run(_restore(argv[1], argv[2]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
