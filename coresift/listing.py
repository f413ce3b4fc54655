"""Listing a source: which objects exist, with an identity that changes when their bytes do,
and their media kind (decided here, once, by `coresift.media`).

Nothing here reads object bodies. fsspec backends paginate (`find` walks every page of an S3
listing), so buckets with more than 1000 keys list completely.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from fsspec import AbstractFileSystem
from pydantic import BaseModel, ConfigDict

from coresift.errors import ConfigError, SourceError, SourceNotFoundError
from coresift.media import MediaKind, extension_of, kind_of
from coresift.storage import describe_error, full_url, is_access_denied, is_local_fs, open_url

LISTING_THREADS = 16  # prefixes listed at once; requests, not cores, are what they wait on


class ObjectRef(BaseModel):
    """One object's identity (its URI, a version that changes with its content, and its size)
    and its media kind; unsupported objects are listed too, so runs can count them."""

    model_config = ConfigDict(frozen=True)

    uri: str
    version: str
    size: int
    kind: MediaKind


@dataclass(frozen=True)
class RelevantFilenames:
    """The relevant-filenames file: exact paths, 'prefix*' includes, '!' excludes."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> RelevantFilenames:
        exact: set[str] = set()
        prefixes: list[str] = []
        excludes: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("!"):
                excludes.append(line[1:].strip().lstrip("/"))
            elif line.endswith("*"):
                prefixes.append(line[:-1].lstrip("/"))
            else:
                exact.add(line.lstrip("/"))
        return cls(frozenset(exact), tuple(prefixes), tuple(excludes))

    def admits(self, relative: str) -> bool:
        for pattern in self.excludes:
            if relative == pattern or (pattern.endswith("*") and relative.startswith(pattern[:-1])):
                return False
        return relative in self.exact or relative.startswith(self.prefixes)


@dataclass(frozen=True)
class ObjectFilter:
    """Which listed paths the user wants: globs and relevant filenames (any media kind)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    relevant: RelevantFilenames | None = None

    def admits(self, relative: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(relative, p) for p in self.include):
            return False
        if any(fnmatch.fnmatchcase(relative, p) for p in self.exclude):
            return False
        return self.relevant is None or self.relevant.admits(relative)


@dataclass(frozen=True)
class SourceScope:
    """The URIs a source covers: those under its root that its filters admit.

    A run marks only these gone when they are no longer listed, so one datapool can hold
    several sources, and narrowing a filter never looks like a deletion.
    """

    root: str
    object_filter: ObjectFilter = ObjectFilter()

    def covers(self, uri: str) -> bool:
        if uri == self.root:  # a source that is one object
            relative = os.path.basename(uri)
        elif uri.startswith(self.root + "/"):
            relative = uri[len(self.root) + 1 :]
        else:
            return False
        return self.object_filter.admits(relative)


LISTED = pa.schema(
    [("uri", pa.string()), ("version", pa.string()), ("size", pa.int64()), ("kind", pa.string())]
)


def table_of(refs: Iterable[ObjectRef]) -> pa.Table:
    """Object identities as columns (schema LISTED): millions of them stay a few buffers."""
    columns: dict[str, list[Any]] = {name: [] for name in LISTED.names}
    for ref in refs:
        for name, values in columns.items():
            values.append(getattr(ref, name))
    return pa.table(columns, schema=LISTED)


def refs_of(table: pa.Table) -> list[ObjectRef]:
    """One ObjectRef per row of a LISTED table: for the objects a run reads, not a whole listing."""
    return [ObjectRef.model_validate(row) for row in table.select(LISTED.names).to_pylist()]


@dataclass(frozen=True)
class Listing:
    """A source's admitted objects (schema LISTED), in a stable order, and the scope they
    were listed in."""

    objects: pa.Table
    scope: SourceScope

    def __len__(self) -> int:
        return len(self.objects)

    def refs(self) -> list[ObjectRef]:
        return refs_of(self.objects)


def content_type_of(fs: AbstractFileSystem, path: str, info: dict[str, Any]) -> str | None:
    """The object's content type as its store keeps it.

    GCS and Azure listings carry it; an S3 listing does not, so an S3 object without an
    extension costs one HEAD request (objects with an extension are judged by it, for free).
    """
    azure_settings = info.get("content_settings") or {}  # a dict-like ContentSettings
    found = info.get("ContentType") or info.get("contentType") or azure_settings.get("content_type")
    if found or extension_of(path) or is_local_fs(fs):
        return str(found) if found else None
    try:
        # refresh: the listing filled the cache with entries that lack the content type
        return fs.info(path, refresh=True).get("ContentType")  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def read_relevant_filenames(url: str, options: dict[str, Any] | None = None) -> RelevantFilenames:
    """Load a relevant-filenames file from any URL."""
    fs, path = open_url(url, options)
    try:
        text = fs.cat_file(path).decode("utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as error:
        raise ConfigError(f"source.relevant_filenames: cannot read {url}: {error}") from None
    except OSError as error:  # the store may answer next time
        raise SourceError(f"cannot read relevant-filenames file {url}: {error}") from None
    return RelevantFilenames.parse(text)


def version_of(info: dict[str, Any], local_path: str | None) -> str:
    """A version string that changes whenever the object's bytes change.

    S3: the version id where versioning is on, else the ETag; GCS: the generation; Azure: the
    ETag; local files: mtime in nanoseconds plus size.
    """
    if local_path is not None:
        stat = os.stat(local_path)
        return f"{stat.st_mtime_ns}-{stat.st_size}"
    if info.get("generation"):  # GCS: generation, plus the content hash where present
        checksum = info.get("md5Hash") or info.get("crc32c") or ""
        return f"{info['generation']}-{checksum}" if checksum else str(info["generation"])
    for key in ("VersionId", "etag", "ETag"):
        value = info.get(key)
        if value not in (None, "", "null"):
            return str(value).strip('"')
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if mtime is None:
        raise SourceError(f"the store gives no version for {info.get('name')}")
    return f"{mtime}-{info.get('size')}"


def find(fs: AbstractFileSystem, root: str, threads: int = LISTING_THREADS) -> dict[str, Any]:
    """Every entry under root with its details: one paginated walk (threads=1), or divide and
    conquer, each prefix under root walked by its own request stream, `threads` at a time.

    The result is the same either way: the entries of root itself plus those under each of
    its prefixes. A root whose only entry is one prefix is split one level further down.
    """
    if threads <= 1:
        return dict(fs.find(root, detail=True))
    top = root
    while True:
        fs.invalidate_cache(top)  # an earlier run in this process filled it (adlfs: no refresh)
        entries = fs.ls(top, detail=True)
        prefixes = [e["name"] for e in entries if e["type"] == "directory"]
        if len(entries) != 1 or not prefixes or prefixes[0].rstrip("/") == top.rstrip("/"):
            break
        top = prefixes[0]
    found = {e["name"]: e for e in entries if e["type"] != "directory"}
    with ThreadPoolExecutor(threads, thread_name_prefix="coresift-listing") as pool:
        for part in pool.map(lambda prefix: fs.find(prefix, detail=True), prefixes):
            found.update(part)
    return found


def iter_objects(
    fs: AbstractFileSystem,
    root: str,
    object_filter: ObjectFilter,
    scheme: str | None = None,
    threads: int = LISTING_THREADS,
) -> Iterator[ObjectRef]:
    """Every admitted object under root, in a stable (sorted) order, whatever its kind
    (object stores are listed `threads` prefixes at a time, see `find`)."""
    local = is_local_fs(fs)
    root = root.rstrip("/")
    try:
        listing = find(fs, root, 1 if local else threads)
    except FileNotFoundError:
        raise SourceNotFoundError(f"source {full_url(fs, root)} does not exist") from None
    except PermissionError as error:
        raise SourceError(
            f"access denied listing {full_url(fs, root)}: {describe_error(error)}"
        ) from None
    for path in sorted(listing):
        info = listing[path]
        if info.get("type") == "directory":
            continue
        relative = path[len(root) + 1 :] if path.startswith(root + "/") else os.path.basename(path)
        if not object_filter.admits(relative):
            continue
        yield ObjectRef(
            uri=full_url(fs, path, scheme),
            version=version_of(info, path if local else None),
            size=int(info.get("size") or 0),
            kind=kind_of(path, content_type_of(fs, path, info)),
        )


def list_source(
    url: str,
    options: dict[str, Any] | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    relevant_filenames: str | None = None,
    threads: int = LISTING_THREADS,
) -> Listing:
    """List the admitted objects of a source URL (recursively, all pages), with their kinds."""
    fs, root = open_url(url, options)
    probe_source(fs, root, url)
    relevant = read_relevant_filenames(relevant_filenames, options) if relevant_filenames else None
    object_filter = ObjectFilter(tuple(include), tuple(exclude), relevant)
    scheme = url.split("://", 1)[0] if "://" in url else None
    objects = table_of(iter_objects(fs, root, object_filter, scheme, threads))
    return Listing(objects, SourceScope(full_url(fs, root.rstrip("/"), scheme), object_filter))


def probe_source(fs: AbstractFileSystem, root: str, url: str) -> None:
    """Fail with a message naming the URL if the source is missing or not readable.

    Raises:
        SourceError: the bucket or folder does not exist, access is denied (wrong or expired
            credentials), or the store cannot be reached.
    """
    try:
        found = fs.exists(root) and (fs.isdir(root) or fs.isfile(root))
        if found and fs.isdir(root):
            fs.ls(root, detail=False)  # stores answer exists() without checking read access
    except FileNotFoundError:
        found = False
    except Exception as error:  # each SDK raises its own types; all become one clear message
        if is_access_denied(error):
            raise SourceError(
                f"access denied to source {url}: check its credentials ({describe_error(error)})"
            ) from None
        raise SourceError(f"source {url} cannot be reached: {describe_error(error)}") from None
    if not found:
        bucket = root.split("/", 1)[0]
        if "://" in url and not _exists_quietly(fs, bucket):
            raise SourceNotFoundError(
                f"source {url}: bucket or container {bucket!r} does not exist"
            )
        raise SourceNotFoundError(f"source {url} does not exist")


def _exists_quietly(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.exists(path))
    except (OSError, ValueError):
        return False
