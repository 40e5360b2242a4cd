"""The asyncio handle `await reprise.open(path)` over the Rust runtime."""

import asyncio

import pytest

import reprise

GUILDS = [1000 + g for g in range(10)]


def track(n):
    return {"encoded": f"QAAA{n:05d}", "title": f"Track {n}", "length_ms": 100_000}


def run(coro):
    return asyncio.run(coro)


def test_100_tasks_10_guilds_every_seq_acknowledged(tmp_path):
    async def main():
        async with await reprise.open(tmp_path) as r:

            async def task(t):
                guild = GUILDS[t % len(GUILDS)]
                seqs = []
                for k in range(5):
                    seqs.append(await r.append(guild, {"type": "tracks_enqueued", "tracks": [track(t * 100 + k)]}))
                return guild, t, seqs

            results = await asyncio.gather(*(task(t) for t in range(100)))
            states = {g: await r.state(g) for g in GUILDS}
        return results, states

    results, states = run(main())
    by_guild = {}
    for guild, t, seqs in results:
        assert seqs == sorted(seqs)
        by_guild.setdefault(guild, []).extend((s, t * 100 + k) for k, s in enumerate(seqs))
    for guild in GUILDS:
        acked = sorted(by_guild[guild])
        assert [s for s, _ in acked] == list(range(1, 51))
        upcoming = [e["track"]["encoded"] for e in states[guild]["queue"]["upcoming"]]
        assert upcoming == [f"QAAA{n:05d}" for _, n in acked]
        assert states[guild]["seq"] == 50
    # The same directory, reopened blocking, holds exactly what was acknowledged.
    with reprise.Journal(tmp_path) as j:
        for guild in GUILDS:
            assert j.state(guild) == states[guild]


def test_subscribe_sees_every_event_in_order(tmp_path):
    async def main():
        r = await reprise.open(tmp_path)
        sub = await r.subscribe(7)
        events = [{"type": "volume_set", "volume": v} for v in range(1, 40)]
        seqs = [await r.append(7, e) for e in events[:20]]
        seqs += await r.append_many(7, events[20:], durability="batched")
        seen = []
        async for item in sub:
            seen.append(item)
            if len(seen) == len(events):
                break
        await r.close()
        return events, seqs, seen

    events, seqs, seen = run(main())
    assert seqs == list(range(1, 40))
    assert [s["seq"] for s in seen] == seqs
    assert [s["event"] for s in seen] == events


def test_close_flushes_and_releases(tmp_path):
    async def main():
        r = await reprise.open(tmp_path, history_max=5)
        for v in range(10):
            await r.append(3, {"type": "volume_set", "volume": v}, durability="none")
        before = await r.state(3)
        sonora = await r.sonora(3)
        body = await r.lavalink(3, now_unix_ms=0)
        await r.close()
        with pytest.raises(reprise.Error):
            await r.append(3, {"type": "volume_set", "volume": 1})
        return before, sonora, body

    before, sonora, body = run(main())
    assert before["seq"] == 10 and before["player"]["volume"] == 9
    assert sonora["data"]["player"]["volume"] == 9
    assert body["volume"] == 9
    with reprise.Journal(tmp_path) as j:
        assert j.state(3) == before


def test_second_opener_is_locked_and_invalid_event_writes_nothing(tmp_path):
    async def main():
        async with await reprise.open(tmp_path) as r:
            with pytest.raises(reprise.Locked):
                await reprise.open(tmp_path)
            with pytest.raises(reprise.Locked):
                reprise.Journal(tmp_path)
            await r.append(5, {"type": "volume_set", "volume": 10})
            with pytest.raises(reprise.InvalidEvent):
                await r.append(5, {"type": "volume_set", "volume": 1001})
            with pytest.raises(reprise.InvalidEvent):
                await r.append(5, {"type": "track_removed", "index": 0})
            with pytest.raises(reprise.InvalidEvent):
                r.append(5, {"type": "no_such_event"})
            with pytest.raises(reprise.InvalidEvent):
                await r.append_many(5, [{"type": "volume_set", "volume": 1}, {"type": "track_removed", "index": 3}])
            assert (await r.state(5))["seq"] == 1
            assert (await r.state_at(5, 1))["player"]["volume"] == 10
            assert await r.snapshot(5) == 1

    run(main())
    with reprise.Journal(tmp_path) as j:
        assert j.state(5)["seq"] == 1
        assert j.state(5)["player"]["volume"] == 10
