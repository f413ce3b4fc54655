"""`coresift export`: a tag's picks, or every sample of a datapool, in the format of the tool
that comes next (a script, a labelling tool, an explorer).

The modules behind it are imported when an export runs, so the CLI starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coresift.errors import ConfigError

if TYPE_CHECKING:
    from coresift.datapool import Datapool

FORMATS = ("txt", "csv", "parquet", "labelstudio", "coco", "fiftyone")
_PRINTABLE = ("txt", "csv", "labelstudio", "coco")


@dataclass(frozen=True)
class Exported:
    """What an export wrote: how many samples, where, and the text to print if no output."""

    samples: int
    written: list[str]
    text: str | None = None


def export(
    datapool: Datapool,
    tag: str | None,
    fmt: str,
    output: str | None = None,
    presign_s: int | None = None,
) -> Exported:
    """Export a tag's picks, or every current sample with its tags (tag None).

    Args:
        output: the file or URL to write; None returns the text of printable formats. For
            fiftyone, the dataset name (default coresift-TAG, or coresift-all).
        presign_s: give cloud objects presigned HTTPS URLs valid this many seconds.
    """
    from coresift.export import formats
    from coresift.export.records import export_records
    from coresift.export.urls import presigned_url
    from coresift.storage import open_url

    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if output is None and fmt not in (*_PRINTABLE, "fiftyone"):
        raise ConfigError(f"--output: --format {fmt} needs --output FILE")
    if presign_s is not None and presign_s <= 0:
        raise ConfigError(f"--presign: {presign_s} is not a positive number of seconds")
    if presign_s and fmt == "fiftyone":
        raise ConfigError("--presign: FiftyOne datasets keep the objects' own paths")
    records = export_records(datapool, tag, embeddings=fmt == "fiftyone")
    if fmt == "fiftyone":
        from coresift.export.fiftyone import to_fiftyone

        what = f"tag {tag!r} of {datapool.url}" if tag else f"every sample of {datapool.url}"
        names = to_fiftyone(records, output or f"coresift-{tag or 'all'}", what)
        return Exported(len(records), names)
    urls = {r.sample_id: presigned_url(r.uri, presign_s) for r in records} if presign_s else {}
    writer = {
        "txt": formats.to_txt,
        "csv": formats.to_csv,
        "parquet": formats.to_parquet,
        "labelstudio": formats.to_label_studio,
        "coco": formats.to_coco,
    }[fmt]
    data = writer(records, lambda r: urls.get(r.sample_id))
    if output is None:
        return Exported(len(records), [], data.decode())
    fs, path = open_url(output)
    fs.pipe_file(path, data)
    return Exported(len(records), [output])
