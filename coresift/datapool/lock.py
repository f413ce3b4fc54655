"""The datapool's lock file: one writing run at a time, whatever orchestrates it.

The lock is created atomically (O_EXCL locally, If-None-Match on object stores) and names its
holder. The holder refreshes it every `HEARTBEAT_S`; a lock whose holder is a dead process on
this host, or whose heartbeat is older than `STALE_AFTER_S` (its machine died, or lost the
store), is broken. So a dead run never blocks the next one for more than a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fsspec import AbstractFileSystem

from coresift.errors import DatapoolBusyError
from coresift.storage import is_local_fs

logger = logging.getLogger(__name__)
LOCK_NAME = "_coresift.lock"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
_POLL_S = 2.0


class DatapoolLock:
    """The lock file at the root of one datapool."""

    def __init__(self, fs: AbstractFileSystem, root: str, url: str):
        self._fs = fs
        self._root = root
        self._url = url
        self.path = f"{root}/{LOCK_NAME}"

    def busy_message(self) -> str | None:
        """The busy message if a live run holds the lock, else None (a cheap pre-flight check)."""
        holder = self._holder()
        if holder is None:
            return None
        if _is_stale(holder):
            with contextlib.suppress(FileNotFoundError):  # another waiter broke it first
                self._fs.rm_file(self.path)
            return None
        return self._message(holder)

    def wait_until_free(self, wait_s: float) -> None:
        """Return once no live run holds the lock; wait at most wait_s for one to finish.

        Raises:
            DatapoolBusyError: still held after wait_s; the message names the holder.
        """
        deadline = time.monotonic() + wait_s
        announced = False
        while (busy := self.busy_message()) is not None:
            if time.monotonic() >= deadline:
                raise DatapoolBusyError(f"{busy} (waited {wait_s:g} s)")
            if not announced:
                logger.warning("%s Waiting up to %g s for it to finish.", busy, wait_s)
                announced = True
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))

    @contextmanager
    def hold(self, run_id: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the lock for a run, waiting up to wait_s for a live holder to finish.

        Raises:
            DatapoolBusyError: another live run still holds the lock; the message names it.
        """
        self._fs.makedirs(self._root, exist_ok=True)
        deadline = time.monotonic() + wait_s
        while not self._create_exclusive(self._holder_record(run_id)):
            if (self._holder() or {}).get("run_id") == run_id:
                break  # an earlier attempt of ours landed, and only its answer was lost
            self.wait_until_free(max(0.0, deadline - time.monotonic()))
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._beat, args=(run_id, stop), name="coresift-lock-heartbeat", daemon=True
        )
        heartbeat.start()
        try:
            yield
        finally:
            stop.set()
            heartbeat.join()
            if (self._holder() or {}).get("run_id") == run_id:
                self._fs.rm_file(self.path)

    def _holder_record(self, run_id: str) -> bytes:
        now = time.time()
        holder = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": now,
            "heartbeat": now,
        }
        return json.dumps(holder).encode()

    def _beat(self, run_id: str, stop: threading.Event) -> None:
        """Refresh the heartbeat while the run lives (never over a lock someone else took)."""
        while not stop.wait(HEARTBEAT_S):
            holder = self._holder()
            if holder is not None and holder.get("run_id") == run_id:
                with contextlib.suppress(OSError):  # a store hiccup: the next beat catches up
                    self._replace(json.dumps({**holder, "heartbeat": time.time()}).encode())

    def _replace(self, data: bytes) -> None:
        """Overwrite the lock so that readers see the old or the new record, never a part."""
        if not is_local_fs(self._fs):
            self._fs.pipe_file(self.path, data)  # an object store's put is atomic
            return
        partial = f"{self.path}.{os.getpid()}.partial"
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, self.path)

    def _create_exclusive(self, data: bytes) -> bool:
        try:
            if is_local_fs(self._fs):
                with open(self.path, "xb") as handle:
                    handle.write(data)
            else:
                self._fs.pipe_file(self.path, data, mode="create")  # S3: If-None-Match: *
        except FileExistsError:
            return False
        except OSError:
            # Some servers answer 412 Precondition Failed, which s3fs reports as a plain OSError.
            if self._fs.exists(self.path):
                return False
            raise
        return True

    def _holder(self) -> dict[str, Any] | None:
        """The holder's record; None when there is no lock, {} when it cannot be read."""
        try:
            holder = json.loads(self._fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}
        return holder if isinstance(holder, dict) else {}

    def _message(self, holder: dict[str, Any]) -> str:
        return (
            f"datapool {self._url} is locked by run {holder.get('run_id', '?')} "
            f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); one run at a time "
            f"per datapool. A holder that died is ignored after {STALE_AFTER_S:g} s."
        )


def _is_stale(holder: dict[str, Any]) -> bool:
    """Whether the holder died: a dead process on this host, or a heartbeat gone quiet."""
    pid = holder.get("pid")
    dead_here = (
        holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)
    )
    beat = holder.get("heartbeat")
    return dead_here or (isinstance(beat, int | float) and time.time() - beat > STALE_AFTER_S)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
