"""The work area `_work/`: Parquet artifacts of the run in progress, outside the tables.

Processing shards and the selection leave their rows here for the commit; a resumed run
reuses what finished shards left. Deleting the folder is always safe: it retires the cached
shards with it (see `epoch`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from coresift.errors import DatapoolError
from coresift.storage import is_local_fs, retried


class WorkArea:
    """The `_work/` folder of one datapool."""

    def __init__(self, fs: AbstractFileSystem, root: str):
        self._fs = fs
        self.root = f"{root}/_work"

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}.parquet"

    def write(self, name: str, table: pa.Table) -> None:
        path = self._path(name)
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        data = buffer.getvalue().to_pybytes()
        retried(lambda: self._fs.pipe_file(path, data), f"writing {path}")

    def read(self, name: str) -> pa.Table:
        path = self._path(name)
        try:
            data = retried(lambda: bytes(self._fs.cat_file(path)), f"reading {path}")
            return pq.read_table(pa.BufferReader(data))
        except FileNotFoundError:
            raise DatapoolError(
                f"processing artifact {path} is missing: delete the whole {self.root} "
                "folder (it retires cached shards with it) and run again"
            ) from None

    def tables(self, names: list[str]) -> Iterator[pa.Table]:
        """The artifacts, read one at a time as they are used (so a run's parts can be
        streamed into a commit without all of them in memory)."""
        for name in names:
            yield self.read(name)

    def remove(self, names: list[str]) -> None:
        """Delete artifacts, and the local folders they leave empty; those already gone are
        fine (a retried cleanup)."""
        folders = set()
        for name in names:
            path = self._path(name)
            if self._fs.exists(path):
                self._fs.rm_file(path)
            folders.add(path.rsplit("/", 1)[0])
        if is_local_fs(self._fs):  # object stores have no folders to leave behind
            for folder in sorted(folders, reverse=True):
                while folder.startswith(self.root + "/"):
                    try:
                        os.rmdir(folder)
                    except OSError:  # not empty, or gone already
                        break
                    folder = folder.rsplit("/", 1)[0]

    def epoch(self) -> str:
        """A random id of the work area, made anew whenever `_work/` is deleted.

        It is part of every shard's cache key, so deleting `_work/` retires cached shards
        whose artifacts went with it.
        """
        path = f"{self.root}/EPOCH"
        try:
            return str(self._fs.cat_file(path).decode())
        except FileNotFoundError:
            epoch = secrets.token_hex(8)
            self._fs.makedirs(self.root, exist_ok=True)
            self._fs.pipe_file(path, epoch.encode())
            return epoch
