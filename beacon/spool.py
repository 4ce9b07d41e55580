"""Disk spool for heartbeats Pulse has not taken yet.

Layout of the spool directory:
* ``seg-<n>.jsonl`` — append-only segments, one JSON record ``{"t": epoch, "hb": {…}}``
  per line, each append flushed and fsynced before ``append`` returns.
* ``cursor.json`` — ``{"segment": n, "offset": bytes}``: everything before it has been
  delivered (replaced atomically: write, fsync, rename).
* ``counters.json`` — heartbeats dropped (size/age bounds, unreadable) and rejected.

Bounds: when the pending bytes would exceed ``max_bytes`` the oldest whole segments are
dropped (segments are ~1/10 of the budget, so at most ~10 % is dropped at once), and
records older than ``max_age_seconds`` are skipped. Every dropped heartbeat is counted.
Delivery is at-least-once: a crash between Pulse's 200 and the cursor update re-sends a
batch, which Pulse deduplicates.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("beacon.spool")


def read_stats(directory: str | Path) -> dict[str, int]:
    """The spool's counters for ``beacon status``, read without changing any file.

    ``Spool()`` repairs a half-written tail and creates the directory; a status query
    must not touch the files of an agent that may be writing them. A partial last line
    is not counted.
    """
    d = Path(directory)
    out = {"heartbeats": 0, "bytes": 0, "dropped": 0, "rejected": 0}
    if not d.is_dir():
        return out
    try:
        counters = json.loads((d / "counters.json").read_text())
        out["dropped"] = int(counters.get("dropped", 0))
        out["rejected"] = int(counters.get("rejected", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    try:
        cursor = json.loads((d / "cursor.json").read_text())
        seg, offset = int(cursor["segment"]), int(cursor["offset"])
    except (OSError, ValueError, TypeError, KeyError):
        seg, offset = 0, 0
    for path in sorted(d.glob("seg-*.jsonl")):
        try:
            n = int(path.name[4:14])
        except ValueError:
            continue
        if n < seg:
            continue
        try:
            with open(path, "rb") as fh:
                fh.seek(offset if n == seg else 0)
                data = fh.read()
        except OSError:
            continue
        out["bytes"] += len(data)
        out["heartbeats"] += data.count(b"\n")
    return out


@dataclass(frozen=True)
class Position:
    segment: int
    offset: int


@dataclass
class SpoolRecord:
    created_at: float
    heartbeat: dict[str, Any]
    end: Position  # the cursor after this record


class Spool:
    """Append-only, fsynced, size- and age-bounded FIFO of heartbeats on disk."""

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int = 100 * 1024 * 1024,
        max_age_seconds: float = 7 * 24 * 3600,
        segment_bytes: int | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.segment_bytes = segment_bytes or max(1024, min(1024 * 1024, max_bytes // 10))
        self._lock = threading.RLock()
        self._cursor = self._read_json("cursor.json", {"segment": 0, "offset": 0})
        counters = self._read_json("counters.json", {})
        self.dropped = int(counters.get("dropped", 0))
        self.rejected = int(counters.get("rejected", 0))
        self._repair_tail()
        self._count = self._scan_count()

    # -- files -------------------------------------------------------------------------
    def _seg_path(self, n: int) -> Path:
        return self.dir / f"seg-{n:010d}.jsonl"

    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:14]) for p in self.dir.glob("seg-*.jsonl"))

    def _read_json(self, name: str, default: dict[str, Any]) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / name).read_text())
            return data if isinstance(data, dict) else default
        except (OSError, ValueError):
            return default

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _repair_tail(self) -> None:
        """Cut a half-written last line (crash mid-append) so the next append starts clean."""
        segments = self._segments()
        if not segments:
            return
        path = self._seg_path(segments[-1])
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(path, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            self._count_dropped(1)

    def _start_of(self, n: int) -> int:
        return self._cursor["offset"] if n == self._cursor["segment"] else 0

    def _pending(self) -> list[int]:
        return [n for n in self._segments() if n >= self._cursor["segment"]]

    def _scan_count(self) -> int:
        total = 0
        for n in self._pending():
            with open(self._seg_path(n), "rb") as fh:
                fh.seek(self._start_of(n))
                total += sum(1 for _ in fh)
        return total

    def _count_dropped(self, n: int) -> None:
        if n:
            self.dropped += n
            self._write_json("counters.json", {"dropped": self.dropped, "rejected": self.rejected})

    # -- public API --------------------------------------------------------------------
    @property
    def heartbeats(self) -> int:
        """Heartbeats waiting for delivery."""
        return self._count

    @property
    def bytes(self) -> int:
        """Bytes waiting for delivery."""
        with self._lock:
            return sum(
                self._seg_path(n).stat().st_size - self._start_of(n) for n in self._pending()
            )

    def stats(self) -> dict[str, int]:
        return {
            "heartbeats": self.heartbeats,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "rejected": self.rejected,
        }

    def append(self, heartbeat: dict[str, Any], now: float | None = None) -> None:
        """Write one heartbeat durably (fsync) at the end of the spool, enforcing bounds."""
        line = (
            json.dumps(
                {"t": time.time() if now is None else now, "hb": heartbeat}, separators=(",", ":")
            ).encode()
            + b"\n"
        )
        with self._lock:
            self._drop_expired(now)
            segments = self._pending()
            current = (
                segments[-1] if segments else max([self._cursor["segment"], *self._segments()])
            )
            path = self._seg_path(current)
            size = path.stat().st_size if path.exists() else 0
            if size and size + len(line) > self.segment_bytes:
                current += 1
                path = self._seg_path(current)
            while self.bytes + len(line) > self.max_bytes:
                older = [n for n in self._pending() if n < current]
                if not older:
                    break
                self._drop_segment(older[0])
            created = not path.exists()
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            if created:
                self._fsync_dir()
            self._count += 1

    def _drop_segment(self, n: int) -> None:
        path = self._seg_path(n)
        with open(path, "rb") as fh:
            fh.seek(self._start_of(n))
            lost = sum(1 for _ in fh)
        path.unlink()
        self._count -= lost
        if n == self._cursor["segment"]:
            self._set_cursor(Position(n + 1, 0))
        self._count_dropped(lost)
        log.warning("spool over %d bytes: dropped %d oldest heartbeat(s)", self.max_bytes, lost)

    def _drop_expired(self, now: float | None) -> None:
        """Drop whole segments whose newest record (file mtime) is past the age bound."""
        limit = (time.time() if now is None else now) - self.max_age_seconds
        for n in self._pending()[:-1]:
            if self._seg_path(n).stat().st_mtime < limit:
                self._drop_segment(n)

    def peek(
        self, limit: int = 500, max_batch_bytes: int = 4 * 1024 * 1024, now: float | None = None
    ) -> list[SpoolRecord]:
        """Up to ``limit`` oldest records (not removed; ``commit`` does that).

        Records past the age bound or unreadable are dropped and counted on the way.
        """
        limit_ts = (time.time() if now is None else now) - self.max_age_seconds
        out: list[SpoolRecord] = []
        used = 0
        with self._lock:
            for n in self._pending():
                with open(self._seg_path(n), "rb") as fh:
                    fh.seek(self._start_of(n))
                    offset = fh.tell()
                    for raw in fh:
                        offset += len(raw)
                        end = Position(n, offset)
                        try:
                            rec = json.loads(raw)
                            created, hb = float(rec["t"]), rec["hb"]
                        except (ValueError, KeyError, TypeError):
                            created, hb = 0.0, None
                        if hb is None or created < limit_ts:
                            if not out:  # only skip at the head, so the cursor stays exact
                                self._set_cursor(end)
                                self._count -= 1
                                self._count_dropped(1)
                                continue
                            return out
                        if out and (len(out) >= limit or used + len(raw) > max_batch_bytes):
                            return out
                        out.append(SpoolRecord(created, hb, end))
                        used += len(raw)
        return out

    def commit(self, upto: Position, delivered: int) -> None:
        """Mark everything up to ``upto`` as consumed (delivered or rejected)."""
        with self._lock:
            self._set_cursor(upto)
            self._count = max(0, self._count - delivered)

    def count_rejected(self, n: int) -> None:
        with self._lock:
            self.rejected += n
            self._write_json("counters.json", {"dropped": self.dropped, "rejected": self.rejected})

    def _set_cursor(self, pos: Position) -> None:
        segments = self._segments()
        seg, offset = pos.segment, pos.offset
        path = self._seg_path(seg)
        # A fully consumed segment that is not the newest can go.
        if path.exists() and offset >= path.stat().st_size and segments and seg < segments[-1]:
            path.unlink()
            seg, offset = seg + 1, 0
        for n in segments:
            if n < seg:
                self._seg_path(n).unlink(missing_ok=True)
        self._cursor = {"segment": seg, "offset": offset}
        self._write_json("cursor.json", self._cursor)
