"""`reprise.Journal(path, read_only=True)`: a reader beside a live writer (no lock, nothing
written), `refresh()`, `guilds()` and the `ReadOnly` / `Busy` exceptions."""

import os
import subprocess
import sys
import textwrap

import pytest

import reprise

GUILD = 613425648685547541
OTHER = 81384788765712384


def enqueue(n):
    track = {"encoded": f"QAAA{n:04d}", "title": f"Track {n}", "length_ms": 100_000 + n}
    return {"type": "tracks_enqueued", "tracks": [track]}


def tree(path):
    """Every file under `path` with its size and contents' length (what a reader must not change)."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def test_a_reader_opens_beside_the_writer_and_sees_its_appends_after_refresh(tmp_path):
    with reprise.Journal(tmp_path) as writer:
        writer.append_many(GUILD, [enqueue(1), enqueue(2)])
        writer.append(OTHER, {"type": "volume_set", "volume": 30})
        # The writer holds the lock: a second writer is refused, a reader is not.
        with pytest.raises(reprise.Locked):
            reprise.Journal(tmp_path)
        reader = reprise.Journal(tmp_path, read_only=True)
        assert reader.read_only and not writer.read_only
        assert reader.state(GUILD) == writer.state(GUILD)
        assert reader.guilds() == sorted([GUILD, OTHER]) == writer.guilds()

        writer.append(GUILD, {"type": "volume_set", "volume": 77})
        # What the reader read stays what it read until refresh().
        assert reader.state(GUILD)["seq"] == 2
        reader.refresh()
        assert reader.state(GUILD) == writer.state(GUILD)
        assert reader.state(GUILD)["seq"] == 3
        assert reader.state(GUILD)["player"]["volume"] == 77
        reader.close()


def test_writes_through_a_reader_raise_read_only_and_write_nothing(tmp_path):
    with reprise.Journal(tmp_path) as writer:
        writer.append(GUILD, enqueue(1))
    before = tree(tmp_path)
    with reprise.Journal(tmp_path, read_only=True) as reader:
        with pytest.raises(reprise.ReadOnly):
            reader.append(GUILD, enqueue(2))
        with pytest.raises(reprise.ReadOnly):
            reader.append_many(GUILD, [enqueue(3)])
        assert issubclass(reprise.ReadOnly, reprise.Error)
        assert reader.state(GUILD)["seq"] == 1
        assert reader.verify() == []
    assert tree(tmp_path) == before
    # The directory still opens for writing, holding exactly what it held.
    with reprise.Journal(tmp_path) as writer:
        assert writer.state(GUILD)["seq"] == 1


def test_a_reader_of_a_missing_directory_creates_nothing(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(reprise.Error):
        reprise.Journal(missing, read_only=True)
    assert not missing.exists()


def test_busy_is_an_error_subclass():
    assert issubclass(reprise.Busy, reprise.Error)


WRITER = textwrap.dedent(
    """
    import sys
    import reprise
    path, guild, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with reprise.Journal(path) as j:
        for i in range(n):
            j.append(guild, {"type": "volume_set", "volume": i % 1001}, durability="always")
            print(i + 1, flush=True)
    """
)


def test_a_reader_follows_a_writer_process(tmp_path):
    n = 400
    with reprise.Journal(tmp_path) as j:
        j.append(GUILD, enqueue(0))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(GUILD), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        # Not pytest's working directory: `-c` puts it first on sys.path (python/ holds the
        # source tree of the package, not the installed one).
        cwd=tmp_path,
    )
    try:
        # Wait for the writer's first acknowledgement (it holds the lock from then on).
        first = proc.stdout.readline()
        assert first.strip() == "1"
        reader = reprise.Journal(tmp_path, read_only=True)
        seqs = []
        for _ in range(60):
            reader.refresh()
            st = reader.state(GUILD)
            # Every view is the fold of exactly its seq: the volume of the last volume_set.
            if st["seq"] >= 2:
                assert st["player"]["volume"] == (st["seq"] - 2) % 1001
            seqs.append(st["seq"])
        assert seqs == sorted(seqs), "a reader never goes back in time"
        assert proc.wait(timeout=120) == 0
        reader.refresh()
        assert reader.state(GUILD)["seq"] == n + 1
        reader.close()
    finally:
        if proc.poll() is None:
            proc.kill()
