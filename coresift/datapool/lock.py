"""The datapool's lock file: one writing run at a time, whatever orchestrates it.

The lock is created atomically (O_EXCL locally, If-None-Match on object stores), names its
holder, and is broken automatically when its holder is a dead process on this host.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fsspec import AbstractFileSystem

from coresift.errors import DatapoolBusyError
from coresift.storage import is_local_fs

LOCK_NAME = "_coresift.lock"


class DatapoolLock:
    """The lock file at the root of one datapool."""

    def __init__(self, fs: AbstractFileSystem, root: str, url: str):
        self._fs = fs
        self._root = root
        self._url = url
        self.path = f"{root}/{LOCK_NAME}"

    def busy_message(self) -> str | None:
        """The busy message if a live run holds the lock, else None (a cheap pre-flight check)."""
        if not self._fs.exists(self.path):
            return None
        self._break_if_stale()
        return self._message() if self._fs.exists(self.path) else None

    @contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """Hold the lock for a run; a live holder elsewhere makes this fail clearly.

        Raises:
            DatapoolBusyError: another live run holds the lock; the message names it.
        """
        holder = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.time(),
        }
        self._fs.makedirs(self._root, exist_ok=True)
        if not self._create_exclusive(json.dumps(holder).encode()):
            self._break_if_stale()
            if not self._create_exclusive(json.dumps(holder).encode()):
                raise DatapoolBusyError(self._message())
        try:
            yield
        finally:
            self._fs.rm_file(self.path)

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

    def _holder(self) -> dict[str, object]:
        try:
            holder = json.loads(self._fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _break_if_stale(self) -> None:
        """Remove a lock left by a dead process on this host (a crash during commit)."""
        holder = self._holder()
        pid = holder.get("pid")
        on_this_host = holder.get("host") == socket.gethostname()
        if on_this_host and isinstance(pid, int) and not _pid_alive(pid):
            self._fs.rm_file(self.path)

    def _message(self) -> str:
        holder = self._holder()
        return (
            f"datapool {self._url} is locked by run {holder.get('run_id', '?')} "
            f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); one run at a time "
            f"per datapool. If no run is active, delete {self.path}."
        )


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
