"""The report as one self-contained HTML file: no server, no CDN, opens offline anywhere.

Pictures that are the same for every reader (histograms, coverage) are drawn here as inline
SVG; the map is drawn by a small canvas script (assets/report.js) from the data embedded in
the page. Thumbnails travel as data URIs: those of the focus picks (up to PICK_THUMBS),
of the listed samples, and of a seeded sample of the others for hovering on the map (up to
HOVER_THUMBS), so the file stays bounded whatever the datapool's size.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import numpy as np
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift.report.analysis import coverage, embedded_rows, nearest_unpicked, project
from coresift.report.facts import METRICS, Facts
from coresift.summary import human_bytes
from coresift.thumbnails import data_uri

PICK_THUMBS = 600
HOVER_THUMBS = 1_200
LIST_ITEMS = 48
DECISIONS = 6
_LOG_SCALE = {"sharpness"}  # heavy-tailed: drawn on log10
_PALETTE = ("#e4572e", "#2e86ab", "#f3a712", "#29bf12", "#a833b9", "#d81159", "#0f7173")
_NOT_PICKED, _OTHER_TAGS = "#a7adb5", "#5c6b7a"


def _b64(array: NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def locator(uri: str, frame_index: int | None) -> str:
    """How a sample is named in reports and selections: the URI, '#frame=N' for frames."""
    return uri if frame_index is None else f"{uri}#frame={frame_index}"


class _Thumbs:
    """The thumbnails a page carries, each once: rows are registered while the page is built,
    and all are read from the datapool in one scan at the end."""

    def __init__(self, ids: list[str]):
        self._ids = ids
        self.index: dict[int, int] = {}

    def add(self, row: int) -> int:
        """The row's thumbnail index in the page."""
        return self.index.setdefault(row, len(self.index))

    def img(self, row: int, title: str = "") -> str:
        return f'<img data-thumb="{self.add(row)}" alt="{_esc(title)}" title="{_esc(title)}">'

    def uris(self, load: Callable[[set[str]], dict[str, bytes]]) -> list[str]:
        """Data URIs in index order ('' where the datapool has no thumbnail)."""
        found = load({self._ids[row] for row in self.index})
        uris = [""] * len(self.index)
        for row, index in self.index.items():
            data = found.get(self._ids[row])
            if data is not None:
                uris[index] = data_uri(data)
        return uris


def render(
    facts: Facts, load_thumbnails: Callable[[set[str]], dict[str, bytes]], seed: int = 0
) -> str:
    """The whole page for the gathered facts; thumbnails are read with load_thumbnails."""
    samples = facts.samples
    ids = samples["sample_id"].to_pylist()
    names = [
        locator(u, f)
        for u, f in zip(samples["uri"].to_pylist(), samples["frame_index"].to_pylist(), strict=True)
    ]
    embedded = np.flatnonzero(samples["model"].is_valid().to_numpy(zero_copy_only=False))
    embedded = embedded_rows(facts.embeddings, embedded)
    row_of = {sid: i for i, sid in enumerate(ids)}
    focus_rows = {
        tag: [row_of[s] for s in facts.picks(tag)["sample_id"].to_pylist() if s in row_of]
        for tag in facts.focus
    }
    picked_rows = {row_of[s] for s in facts.tags["sample_id"].to_pylist() if s in row_of}
    thumbs = _Thumbs(ids)
    map_html, map_data = _map_section(facts, embedded, focus_rows, picked_rows, names, thumbs, seed)
    body = "\n".join(
        [
            _run_section(facts),
            map_html,
            _picks_section(facts, focus_rows, names, thumbs, row_of),
            _histograms_section(facts, focus_rows),
            _coverage_section(facts, embedded, focus_rows),
            _decisions_section(facts, embedded, focus_rows, picked_rows, names, thumbs),
            _lists_section(facts, names, thumbs, row_of),
        ]
    )
    # "</" inside the JSON would end the script element early (a path can hold anything).
    data = json.dumps({**map_data, "thumbs": thumbs.uris(load_thumbnails)}, separators=(",", ":"))
    data = data.replace("</", "<\\/")
    assets = files("coresift.report") / "assets"
    title = f"coresift report: {', '.join(facts.focus) or facts.datapool}"
    focus = _esc(", ".join(facts.focus) or "none")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>{(assets / "report.css").read_text()}</style></head>
<body>
<header><h1>coresift report</h1>
<p class="sub">datapool <code>{_esc(facts.datapool)}</code> · tags {focus} ·
made {when} · read from the datapool only</p>
<nav><a href="#run">run</a><a href="#map">map</a><a href="#picks">picks</a>
<a href="#metadata">metadata</a><a href="#coverage">coverage</a>
<a href="#decisions">filter decisions</a><a href="#lists">not picked</a></nav></header>
<main>
{body}
</main>
<script id="report-data" type="application/json">{data}</script>
<script>{(assets / "report.js").read_text()}</script>
</body></html>
"""


def _run_section(facts: Facts) -> str:
    summary = facts.summary
    if summary is None:
        return '<section id="run"><h2>The run</h2><p>No run made these tags.</p></section>'

    def n(key: str) -> int:
        return int(summary.get(key) or 0)

    corrupt = Counter(
        detail
        for reason, detail in zip(
            facts.filtered["reason"].to_pylist(), facts.filtered["detail"].to_pylist(), strict=True
        )
        if reason == "corrupt"
    )
    filtered = summary.get("samples_filtered") or {}
    asked = summary.get("selection_notes") or []
    words = (
        f"The run <code>{_esc(summary.get('run_id'))}</code> listed {n('objects_listed')} "
        f"objects: {n('objects_new')} new, {n('objects_changed')} changed, "
        f"{n('objects_skipped')} unchanged, {n('objects_gone')} gone and "
        f"{n('objects_unsupported')} neither image nor video. "
        f"It read {human_bytes(n('bytes_read'))} "
        f"and processed {n('samples_processed')} samples, {n('samples_corrupt')} of them "
        f"corrupt. It picked <b>{n('samples_selected')}</b> into tag "
        f"<code>{_esc(summary.get('tag'))}</code>, around {n('samples_preselected')} earlier "
        f"picks that it kept as fixed centres."
    )
    rows = [
        ("corrupt, by reason", _counts(corrupt)),
        ("not candidates, by reason", _counts(filtered)),
        ("notes", "<br>".join(_esc(note) for note in asked) or "none"),
        ("runs in this datapool", str(facts.runs)),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<section id="run"><h2>The run</h2><p>{words}</p>'
        f'<table class="facts">{table}</table></section>'
    )


def _counts(counts: dict[str, int] | Counter[str]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{_esc(k)}: {v}" for k, v in sorted(counts.items()))


def _map_section(
    facts: Facts,
    embedded: NDArray[np.intp],
    focus_rows: dict[str, list[int]],
    picked_rows: set[int],
    names: list[str],
    thumbs: _Thumbs,
    seed: int,
) -> tuple[str, dict[str, Any]]:
    coords = project(facts.embeddings, embedded, seed)
    groups = [
        {"name": "not picked", "color": _NOT_PICKED},
        {"name": "other tags", "color": _OTHER_TAGS},
    ]
    group = np.zeros(len(facts.samples), np.uint8)
    group[list(picked_rows)] = 1
    for i, tag in enumerate(facts.focus):
        groups.append({"name": f"tag {tag}", "color": _PALETTE[i % len(_PALETTE)]})
    for i, tag in reversed(list(enumerate(facts.focus))):  # a sample in two: the first named
        group[focus_rows[tag]] = 2 + i
    for rows in focus_rows.values():
        for row in rows[:PICK_THUMBS]:
            thumbs.add(row)
    others = [int(r) for r in embedded if r not in thumbs.index]
    rng = np.random.default_rng(seed)
    for row in rng.permutation(np.asarray(others, np.intp))[:HOVER_THUMBS]:
        thumbs.add(int(row))
    thumb = np.array([thumbs.index.get(int(r), -1) for r in embedded], np.int32)
    metrics = {}
    for name in METRICS:
        values = facts.samples[name].to_numpy(zero_copy_only=False).astype(np.float64)[embedded]
        if name in _LOG_SCALE:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log10(np.where(values > 0, values, np.nan))
        metrics[name] = _b64(values.astype(np.float32))
    data = {
        "count": len(embedded),
        "x": _b64(coords[:, 0]),
        "y": _b64(coords[:, 1]),
        "group": _b64(group[embedded]),
        "groups": groups,
        "thumb": _b64(thumb),
        "paths": [names[r] for r in embedded],
        "metrics": metrics,
        "logScale": sorted(_LOG_SCALE),
    }
    options = "".join(
        f'<option value="{m}">{m}{" (log)" if m in _LOG_SCALE else ""}</option>' for m in METRICS
    )
    carried = len(thumbs.index)
    html_text = f"""<section id="map"><h2>Map of the embedding space</h2>
<div class="controls">colour by <select id="colour"><option value="">tags</option>{options}</select>
<button id="lasso" type="button">lasso</button>
<button id="download" type="button" disabled>download selected paths</button>
<span id="selected"></span><button id="reset" type="button">reset view</button></div>
<div id="legend" class="legend"></div>
<div class="canvas-wrap"><canvas id="canvas" aria-label="embedding map"></canvas>
<div id="tip"></div></div>
<p class="note">Every sample with an embedding is a point ({len(embedded)} of {len(facts.samples)}),
placed by PCA: the first two principal axes of the embeddings (exact, deterministic, and linear,
so distances along them mean what they mean in the embedding; UMAP would bend them, add a
dependency and take minutes at 100k). Wheel to zoom, drag to pan, hover for a sample; with
<b>lasso</b>, draw around points and download their paths, which
<code>coresift tag create --datapool URL --name NAME --from FILE</code> turns into a tag (a
similarity query, say). Thumbnails are carried for the focus picks and {carried} samples in all;
points without one show their path only.</p></section>"""
    return html_text, data


def _picks_section(
    facts: Facts,
    focus_rows: dict[str, list[int]],
    names: list[str],
    thumbs: _Thumbs,
    row_of: dict[str, int],
) -> str:
    parts = ['<section id="picks"><h2>Picks</h2>']
    for tag in facts.focus:
        picks = facts.picks(tag)
        shown = picks.slice(0, PICK_THUMBS).to_pylist()
        parts.append(
            f"<h3>tag <code>{_esc(tag)}</code>: {len(picks)} picks, in pick order"
            + (f" (the first {PICK_THUMBS} shown)" if len(picks) > PICK_THUMBS else "")
            + "</h3><div class='grid'>"
        )
        for pick in shown:
            row = row_of.get(pick["sample_id"])
            if row is None:
                continue
            distance = pick["distance"]
            far = "first pick" if distance is None or math.isinf(distance) else f"{distance:.3f}"
            parts.append(
                f"<figure class='pick'>{thumbs.img(row, names[row])}<figcaption>#{pick['rank'] + 1}"
                f" · {far}<br><span class='path'>{_esc(_short(names[row]))}</span>"
                "</figcaption></figure>"
            )
        parts.append("</div>")
    if not facts.focus:
        parts.append("<p>No tag to show.</p>")
    parts.append(
        "<p class='note'>The number under each pick is its distance, when picked, to the "
        "nearest earlier pick: large early on, shrinking as the space fills.</p></section>"
    )
    return "".join(parts)


def _short(name: str) -> str:
    return name if len(name) <= 48 else "…" + name[-47:]


def _svg_histogram(
    series: list[tuple[str, NDArray[np.float64], str]], label: str, bins: int = 30
) -> str:
    """Overlaid histograms (each normalised to its own total) as inline SVG."""
    finite = [values[np.isfinite(values)] for _, values, _ in series]
    everything = (
        np.concatenate([v for v in finite if len(v)]) if any(len(v) for v in finite) else None
    )
    if everything is None:
        return f"<figure class='hist'><figcaption>{_esc(label)}: no values</figcaption></figure>"
    low, high = float(everything.min()), float(everything.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    width, height = 320, 120
    shares = [np.histogram(v, edges)[0] / max(len(v), 1) for v in finite]
    top = max(float(s.max()) for s in shares) or 1.0
    bars = []
    for (name, _, color), share in zip(series, shares, strict=True):
        for i, value in enumerate(share):
            h = height * value / top
            x = width * i / bins
            bars.append(
                f"<rect x='{x:.1f}' y='{height - h:.1f}' width='{width / bins - 1:.1f}' "
                f"height='{h:.1f}' fill='{color}' fill-opacity='0.55'><title>{_esc(name)}: "
                f"{value:.1%} in [{edges[i]:.3g}, {edges[i + 1]:.3g})</title></rect>"
            )
    legend = " ".join(
        f"<span class='key' style='background:{c}'></span>{_esc(n)} ({len(v)})"
        for (n, _, c), v in zip(series, finite, strict=True)
    )
    return (
        f"<figure class='hist'><svg viewBox='0 0 {width} {height + 14}' role='img'>"
        f"{''.join(bars)}<text x='0' y='{height + 12}'>{low:.3g}</text>"
        f"<text x='{width}' y='{height + 12}' text-anchor='end'>{high:.3g}</text></svg>"
        f"<figcaption>{_esc(label)} · {legend}</figcaption></figure>"
    )


def _histograms_section(facts: Facts, focus_rows: dict[str, list[int]]) -> str:
    figures = []
    for name in METRICS:
        values = facts.samples[name].to_numpy(zero_copy_only=False).astype(np.float64)
        label = name
        if name in _LOG_SCALE:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log10(np.where(values > 0, values, np.nan))
            label = f"log10 {name}"
        series = [("all samples", values, _NOT_PICKED)]
        for i, (tag, rows) in enumerate(focus_rows.items()):
            series.append((f"picks of {tag}", values[rows], _PALETTE[i % len(_PALETTE)]))
        figures.append(_svg_histogram(series, label))
    return (
        "<section id='metadata'><h2>Metadata: all samples against the picks</h2>"
        f"<div class='hists'>{''.join(figures)}</div></section>"
    )


def _coverage_section(
    facts: Facts, embedded: NDArray[np.intp], focus_rows: dict[str, list[int]]
) -> str:
    picks = sorted({r for rows in focus_rows.values() for r in rows})
    candidates = embedded[~np.isin(embedded, picks)]
    measured = coverage(facts.embeddings, picks, candidates)
    if measured is None:
        return "<section id='coverage'><h2>Coverage</h2><p>Fewer than two picks.</p></section>"
    hist = _svg_histogram(
        [("samples", measured.nearest_pick, _PALETTE[1])], "distance to the nearest pick"
    )
    ratio = measured.picks_min_pairwise / measured.random_median if measured.random_median else 0
    table = (
        "<table class='facts'><tr><th></th><th>smallest distance between two picks</th></tr>"
        f"<tr><th>the picks ({len(picks)})</th><td>{measured.picks_min_pairwise:.3f}</td></tr>"
        "<tr><th>random sets of as many samples, median of 20</th>"
        f"<td>{measured.random_median:.3f}</td></tr>"
        f"<tr><th>random sets, best of 20</th><td>{measured.random_max:.3f}</td></tr></table>"
    )
    return (
        "<section id='coverage'><h2>Coverage</h2>"
        f"<p>Distance from each sample not picked ({measured.measured} measured) to its nearest "
        f"pick of the focus tags: median {np.median(measured.nearest_pick):.3f}, 95th percentile "
        f"{np.percentile(measured.nearest_pick, 95):.3f}. The picks' smallest pairwise distance "
        f"is {ratio:.1f}x that of random picks.</p><div class='hists'>{hist}</div>{table}</section>"
    )


def _decisions_section(
    facts: Facts,
    embedded: NDArray[np.intp],
    focus_rows: dict[str, list[int]],
    picked_rows: set[int],
    names: list[str],
    thumbs: _Thumbs,
) -> str:
    picks = [r for rows in focus_rows.values() for r in rows][:DECISIONS]
    unpicked = embedded[~np.isin(embedded, np.fromiter(picked_rows, np.intp, len(picked_rows)))]
    rows = []
    for pick in picks:
        neighbours = nearest_unpicked(facts.embeddings, pick, unpicked, 5)
        cells = "".join(
            f"<figure>{thumbs.img(r, names[r])}<figcaption>{d:.3f}</figcaption></figure>"
            for r, d in neighbours
        )
        rows.append(
            f"<div class='decision'><figure class='pick'>{thumbs.img(pick, names[pick])}"
            f"<figcaption>pick</figcaption></figure><div class='arrow'>→</div>{cells}</div>"
        )
    return (
        "<section id='decisions'><h2>Filter decisions</h2><p>The first picks next to their nearest "
        "samples that were not picked (distance below each): what a pick stands for.</p>"
        + ("".join(rows) or "<p>No picks.</p>")
        + "</section>"
    )


def _lists_section(facts: Facts, names: list[str], thumbs: _Thumbs, row_of: dict[str, int]) -> str:
    samples = facts.samples
    corrupt = samples.filter(pc.field("corrupt_reason").is_valid())
    parts = ["<section id='lists'><h2>Not picked, and why</h2>"]
    items = [
        f"<tr><td class='path'>{_esc(locator(u, f))}</td><td>{_esc(c or '')}</td>"
        f"<td>{_esc(m)}</td></tr>"
        for u, f, c, m in itertools.islice(
            zip(
                corrupt["uri"].to_pylist(),
                corrupt["frame_index"].to_pylist(),
                corrupt["corrupt_code"].to_pylist(),
                corrupt["corrupt_reason"].to_pylist(),
                strict=True,
            ),
            LIST_ITEMS,
        )
    ]
    parts.append(
        f"<h3>corrupt ({len(corrupt)})</h3>"
        + (
            "<table class='list'><tr><th>sample</th><th>code</th><th>reason</th></tr>"
            + "".join(items)
            + "</table>"
            if items
            else "<p>none</p>"
        )
    )
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for row in facts.filtered.to_pylist():
        if row["reason"] != "corrupt":
            by_reason.setdefault(row["reason"], []).append(row)
    for reason in ("duplicate", "near_duplicate", "low_information", "threshold"):
        rows = by_reason.get(reason, [])
        cells = []
        for item in rows[:LIST_ITEMS]:
            row = row_of.get(item["sample_id"])
            if row is None:
                continue
            related = row_of.get(item["related_sample_id"] or "")
            twin = (
                f"<figure>{thumbs.img(related, names[related])}"
                "<figcaption>duplicates this</figcaption></figure>"
                if related is not None
                else ""
            )
            cells.append(
                f"<div class='item'><figure>{thumbs.img(row, names[row])}<figcaption>"
                f"<span class='path'>{_esc(_short(names[row]))}</span><br>{_esc(item['detail'])}"
                f"</figcaption></figure>{twin}</div>"
            )
        more = f" (the first {LIST_ITEMS} shown)" if len(rows) > LIST_ITEMS else ""
        parts.append(
            f"<h3>{reason.replace('_', ' ')} ({len(rows)}){more}</h3>"
            + (f"<div class='items'>{''.join(cells)}</div>" if cells else "<p>none</p>")
        )
    parts.append("</section>")
    return "".join(parts)
