"""The blocking `reprise.Journal` API against real journal directories."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import reprise

GUILD = 613425648685547541


def track(n):
    return {"encoded": f"QAAA{n:04d}", "title": f"Track {n}", "length_ms": 100_000 + n}


def enqueue(n):
    return {"type": "tracks_enqueued", "tracks": [track(n)]}


def test_append_state_round_trip(tmp_path):
    with reprise.Journal(tmp_path) as j:
        assert j.append(GUILD, {"type": "volume_set", "volume": 42}) == 1
        assert j.append(GUILD, enqueue(1)) == 2
        assert j.append(GUILD, {"type": "track_started"}, durability="batched") == 3
        st = j.state(GUILD)
    assert st["guild"] == GUILD
    assert st["seq"] == 3
    assert st["player"]["volume"] == 42
    assert "Track 1" in json.dumps(st["queue"]["current"])
    assert st["queue"]["upcoming"] == []


def test_state_matches_cli(tmp_path):
    cli = os.environ.get("REPRISE_BIN") or str(
        Path(__file__).resolve().parents[2] / "target" / "release" / "reprise"
    )
    if not os.path.exists(cli):
        pytest.skip("no reprise CLI built (cargo build --release -p reprise-cli)")
    with reprise.Journal(tmp_path) as j:
        j.append_many(GUILD, [enqueue(1), enqueue(2), {"type": "track_started"}])
        j.append(GUILD, {"type": "volume_set", "volume": 250})
        ours = j.state(GUILD)
    out = subprocess.run(
        [cli, "state", "--dir", str(tmp_path), "--guild", str(GUILD)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out) == ours


def test_append_many_all_or_nothing(tmp_path):
    with reprise.Journal(tmp_path) as j:
        assert j.append_many(GUILD, [enqueue(1), enqueue(2)]) == [1, 2]
        before = j.state(GUILD)
        with pytest.raises(reprise.InvalidEvent):
            j.append_many(GUILD, [enqueue(3), {"type": "track_removed", "index": 99}])
        with pytest.raises(reprise.InvalidEvent):
            j.append_many(GUILD, [enqueue(3), {"type": "no_such_event"}])
        assert j.state(GUILD) == before
        assert j.append(GUILD, enqueue(3)) == 3


@pytest.mark.parametrize(
    "event",
    [
        {"type": "volume_set", "volume": 5000},
        {"type": "volume_set", "volume": 5, "extra": 1},
        {"type": "no_such_event"},
        {"type": "track_removed", "index": 5},
        "not a dict",
    ],
)
def test_invalid_event_writes_nothing(tmp_path, event):
    with reprise.Journal(tmp_path) as j:
        j.append(GUILD, enqueue(1))
        before = j.state(GUILD)
        with pytest.raises(reprise.InvalidEvent):
            j.append(GUILD, event)
        assert j.state(GUILD) == before
    with reprise.Journal(tmp_path) as j:
        assert j.state(GUILD) == before
        assert j.append(GUILD, enqueue(2)) == 2


def test_invalid_event_is_an_error():
    assert issubclass(reprise.InvalidEvent, reprise.Error)
    for cls in (reprise.Corrupt, reprise.Locked, reprise.Fenced, reprise.IoError):
        assert issubclass(cls, reprise.Error)


def test_bad_durability_is_value_error(tmp_path):
    with reprise.Journal(tmp_path) as j:
        with pytest.raises(ValueError):
            j.append(GUILD, enqueue(1), durability="sometimes")
        assert j.state(GUILD)["seq"] == 0


def test_second_opener_is_locked(tmp_path):
    with reprise.Journal(tmp_path):
        with pytest.raises(reprise.Locked):
            reprise.Journal(tmp_path)
    with reprise.Journal(tmp_path) as j:
        assert j.state(GUILD)["seq"] == 0


def test_reopen_after_close_keeps_state(tmp_path):
    j = reprise.Journal(tmp_path, history_max=10)
    j.append_many(GUILD, [enqueue(n) for n in range(5)])
    j.append(GUILD, {"type": "track_started"})
    before = j.state(GUILD)
    j.close()
    with pytest.raises(reprise.Error):
        j.state(GUILD)
    j.close()
    with reprise.Journal(tmp_path) as j2:
        assert j2.state(GUILD) == before
        assert j2.verify() == []


def test_corrupt_file_is_corrupt(tmp_path):
    with reprise.Journal(tmp_path) as j:
        for n in range(20):
            j.append(GUILD, enqueue(n))
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 200]
    assert files
    for p in files:
        data = bytearray(p.read_bytes())
        mid = len(data) // 3
        for i in range(mid, mid + 8):
            data[i] ^= 0xFF
        p.write_bytes(bytes(data))
    with pytest.raises(reprise.Corrupt):
        with reprise.Journal(tmp_path) as j:
            j.state(GUILD)


CHILD = r"""
import sys, reprise
j = reprise.Journal(sys.argv[1])
n = 0
while True:
    n += 1
    seq = j.append(7, {"type": "tracks_enqueued", "tracks": [{"encoded": "E%d" % n, "title": "T"}]})
    print(seq, flush=True)
"""


def test_sigkill_loses_no_acknowledged_append(tmp_path):
    kill_after = random.randint(5, 200)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        # Not the directory pytest runs in: from python/, `-c` would import the source tree
        # (sys.path[0] is the working directory) instead of the installed package.
        cwd=tmp_path,
    )
    acked = 0
    for line in child.stdout:
        acked = int(line)
        if acked >= kill_after:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert acked == kill_after
    with reprise.Journal(tmp_path) as j:
        st = j.state(7)
    assert st["seq"] >= acked


def test_state_at_and_snapshot(tmp_path):
    with reprise.Journal(tmp_path) as j:
        j.append(GUILD, {"type": "volume_set", "volume": 10})
        j.append(GUILD, {"type": "volume_set", "volume": 20})
        j.append(1, {"type": "volume_set", "volume": 30})
        at1 = j.state_at(GUILD, 1)
        assert at1["seq"] == 1 and at1["player"]["volume"] == 10
        assert j.state_at(GUILD, 2)["player"]["volume"] == 20
        with pytest.raises(reprise.Error):
            j.state_at(GUILD, 99)
        j.snapshot()
        j.append(GUILD, {"type": "volume_set", "volume": 40})
        j.snapshot(GUILD)
        now = j.state(GUILD)
    assert [p.name for p in tmp_path.rglob("*.snap")]
    with reprise.Journal(tmp_path) as j:
        assert j.state(GUILD) == now
        assert j.state(1)["player"]["volume"] == 30


def cli_bin():
    cli = os.environ.get("REPRISE_BIN") or str(
        Path(__file__).resolve().parents[2] / "target" / "release" / "reprise"
    )
    if not os.path.exists(cli):
        pytest.skip("no reprise CLI built (cargo build --release -p reprise-cli)")
    return cli


def playing_session(j):
    j.append_many(GUILD, [enqueue(1), enqueue(2), enqueue(3), {"type": "track_started"}])
    j.append(GUILD, {"type": "volume_set", "volume": 250})
    j.append(GUILD, {"type": "position_reported", "position_ms": 400, "at_unix_ms": 1_000_000})
    j.append(
        GUILD,
        {"type": "voice_connected", "session_id": "s1", "channel_id": "42", "endpoint": "e", "token": "t"},
    )


def without_stamp(sonora_file):
    """A Sonora file minus what depends on the second it was written."""
    return {k: v for k, v in sonora_file.items() if k not in ("timestamp", "checksum")}


def test_sonora_matches_cli(tmp_path):
    cli = cli_bin()
    with reprise.Journal(tmp_path) as j:
        playing_session(j)
        ours = j.sonora(GUILD)
    assert ours["guild_id"] == GUILD
    assert ours["data"]["player"]["volume"] == 250
    assert [t["title"] for t in ours["data"]["queue"]["upcoming"]] == ["Track 2", "Track 3"]
    assert ours["data"]["queue"]["current"]["track"] == "QAAA0001"
    out = subprocess.run(
        [cli, "state", "--dir", str(tmp_path), "--guild", str(GUILD), "--format", "sonora"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    theirs = json.loads(out)
    assert without_stamp(theirs) == without_stamp(ours)
    assert set(theirs) == set(ours)


def test_lavalink_matches_cli(tmp_path):
    cli = cli_bin()
    now = 1_000_000 + 1_500
    with reprise.Journal(tmp_path) as j:
        playing_session(j)
        ours = j.lavalink(GUILD, now_unix_ms=now)
        assert j.lavalink(GUILD)["position"] > ours["position"]
    assert ours["position"] == 1_900
    assert ours["volume"] == 250 and ours["paused"] is False
    assert ours["track"]["encoded"] == "QAAA0001"
    assert ours["voice"]["sessionId"] == "s1"
    out = subprocess.run(
        [cli, "lavalink", "--dir", str(tmp_path), "--guild", str(GUILD), "--now-unix-ms", str(now)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out) == ours


def test_verify_reports_a_torn_tail_as_a_dict(tmp_path):
    with reprise.Journal(tmp_path) as j:
        for n in range(5):
            j.append(GUILD, enqueue(n))
    segments = sorted(p for p in tmp_path.rglob("*.wal") if p.stat().st_size > 0)
    assert segments, sorted(str(p) for p in tmp_path.rglob("*"))
    with open(segments[-1], "ab") as f:
        f.write(b"\x01\x02\x03")
    with reprise.Journal(tmp_path) as j:
        findings = j.verify()
        assert j.state(GUILD)["seq"] == 5
    assert len(findings) <= 1
    for f in findings:
        assert set(f) == {"guild", "file", "offset", "kind", "expected", "actual", "detail"}
        assert f["kind"] == "torn_tail"


def test_sonora_file_loads_in_py_sonora(tmp_path):
    manager_module = pytest.importorskip("sonora.snapshot")
    with reprise.Journal(tmp_path / "j") as j:
        playing_session(j)
        ours = j.sonora(GUILD)
    path = tmp_path / f"guild_{GUILD}_1.json"
    path.write_text(json.dumps(ours))
    loaded = manager_module.SnapshotManager(str(tmp_path / "snaps")).load_snapshot(str(path))
    assert loaded.guild_id == GUILD
    assert loaded.checksum == ours["checksum"]
    assert loaded.data == ours["data"]
    tampered = dict(ours, data=dict(ours["data"], player=dict(ours["data"]["player"], volume=1)))
    path.write_text(json.dumps(tampered))
    with pytest.raises(Exception, match="integrity"):
        manager_module.SnapshotManager(str(tmp_path / "snaps")).load_snapshot(str(path))
