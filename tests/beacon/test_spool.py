import os
import time

from beacon.spool import Spool


def hb(i: int, size: int = 0) -> dict:
    return {"n": i, "pad": "x" * size}


def drain(spool: Spool) -> list[int]:
    out = []
    while recs := spool.peek(limit=7):
        out += [r.heartbeat["n"] for r in recs]
        spool.commit(recs[-1].end, len(recs))
    return out


def test_fifo_and_survives_restart(tmp_path):
    spool = Spool(tmp_path, segment_bytes=200)
    for i in range(20):
        spool.append(hb(i))
    recs = spool.peek(limit=5)
    spool.commit(recs[-1].end, len(recs))
    assert spool.heartbeats == 15
    again = Spool(tmp_path, segment_bytes=200)  # a restart
    assert again.heartbeats == 15 and again.bytes > 0
    assert drain(again) == list(range(5, 20))
    assert again.heartbeats == 0 and again.bytes == 0
    again.append(hb(99))
    assert drain(Spool(tmp_path)) == [99]


def test_size_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000, segment_bytes=1_000)
    for i in range(100):
        spool.append(hb(i, 200))  # ~230 bytes each, ~23 KB in all
    assert spool.bytes <= 10_000
    kept = drain(spool)
    assert kept == list(range(100 - len(kept), 100))  # the newest survive, in order
    assert spool.dropped == 100 - len(kept) > 0
    assert Spool(tmp_path, max_bytes=10_000).dropped == spool.dropped  # counter persisted


def test_age_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path, max_age_seconds=3600, segment_bytes=100)
    now = time.time()
    for i in range(6):
        spool.append(hb(i), now=now - 7200 + i)  # two hours old
    for i in range(6, 9):
        spool.append(hb(i), now=now)
    # Old segments' mtimes are "now" on disk, so age them explicitly as a real clock would.
    for p in sorted(tmp_path.glob("seg-*.jsonl"))[:-1]:
        os.utime(p, (now - 7200, now - 7200))
    assert drain(spool) == [6, 7, 8]
    assert spool.dropped == 6 and spool.heartbeats == 0


def test_half_written_tail_is_repaired(tmp_path):
    spool = Spool(tmp_path)
    spool.append(hb(1))
    seg = next(tmp_path.glob("seg-*.jsonl"))
    with open(seg, "ab") as fh:
        fh.write(b'{"t": 1, "hb": {"n"')  # crash mid-append
    again = Spool(tmp_path)
    again.append(hb(2))
    assert drain(again) == [1, 2] and again.dropped == 1


def test_append_is_fsynced(tmp_path, monkeypatch):
    """Each append fsyncs the segment file it wrote to (not just some other file)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    spool = Spool(tmp_path)
    monkeypatch.setattr(os, "fsync", fsync)
    spool.append(hb(1))
    spool.append(hb(2))
    (seg,) = tmp_path.glob("seg-*.jsonl")
    assert synced.count(str(seg.resolve())) == 2
