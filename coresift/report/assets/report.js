// The report's map: every sample a point on a canvas, with zoom, pan, hover and a lasso.
// No library and no network: the data is the JSON embedded in the page.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);

  function decode(text, Kind) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    return new Kind(bytes.buffer);
  }

  // Thumbnails of the static sections (picks, lists, decisions) are filled in from the data.
  for (const img of document.querySelectorAll("img[data-thumb]")) {
    const uri = data.thumbs[Number(img.dataset.thumb)];
    if (uri) img.src = uri;
    else img.replaceWith(Object.assign(document.createElement("div"), { className: "nothumb", textContent: "no thumbnail" }));
  }

  const count = data.count;
  const xs = decode(data.x, Float32Array);
  const ys = decode(data.y, Float32Array);
  const group = decode(data.group, Uint8Array);
  const thumb = decode(data.thumb, Int32Array);
  const metrics = {};
  for (const name of Object.keys(data.metrics)) metrics[name] = decode(data.metrics[name], Float32Array);

  const canvas = document.getElementById("canvas");
  const tip = document.getElementById("tip");
  const context = canvas.getContext("2d");
  const colourSelect = document.getElementById("colour");
  const lassoButton = document.getElementById("lasso");
  const downloadButton = document.getElementById("download");
  const selectedLabel = document.getElementById("selected");
  const legend = document.getElementById("legend");

  let width = 0, height = 0, ratio = 1;
  let view = { scale: 1, cx: 0, cy: 0 };
  let colours = null; // per point colour when colouring by a metric
  let selection = new Set();
  let lassoMode = false;
  let drawn = 0;
  let cells = new Map(); // screen-space grid of point indices, for hovering

  function fit() {
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let i = 0; i < count; i++) {
      if (xs[i] < minX) minX = xs[i];
      if (xs[i] > maxX) maxX = xs[i];
      if (ys[i] < minY) minY = ys[i];
      if (ys[i] > maxY) maxY = ys[i];
    }
    if (!isFinite(minX)) { minX = maxX = minY = maxY = 0; }
    const spanX = Math.max(maxX - minX, 1e-6), spanY = Math.max(maxY - minY, 1e-6);
    view = { scale: 0.9 * Math.min(width / spanX, height / spanY), cx: (minX + maxX) / 2, cy: (minY + maxY) / 2 };
  }

  function screenOf(i) {
    return [(xs[i] - view.cx) * view.scale + width / 2, height / 2 - (ys[i] - view.cy) * view.scale];
  }

  function resize() {
    ratio = window.devicePixelRatio || 1;
    width = canvas.clientWidth;
    height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  const RAMP = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];

  function colourBy(name) {
    if (!name) { colours = null; return; }
    const values = metrics[name];
    const finite = Array.from(values).filter((v) => isFinite(v)).sort((a, b) => a - b);
    colours = new Array(count);
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (!isFinite(v) || finite.length === 0) { colours[i] = "#c8ccd2"; continue; }
      let lo = 0, hi = finite.length; // rank of v among the values: the colour is its quantile
      while (lo < hi) { const mid = (lo + hi) >> 1; if (finite[mid] < v) lo = mid + 1; else hi = mid; }
      colours[i] = RAMP[Math.min(RAMP.length - 1, Math.floor((lo / finite.length) * RAMP.length))];
    }
  }

  function drawLegend() {
    legend.textContent = "";
    if (colours) {
      const name = colourSelect.value;
      legend.innerHTML = "<span>" + name + ": low</span>" + RAMP.map((c) => '<span class="key" style="background:' + c + '"></span>').join("") + "<span>high (by rank)</span>";
      return;
    }
    const counts = new Array(data.groups.length).fill(0);
    for (let i = 0; i < count; i++) counts[group[i]]++;
    data.groups.forEach((g, k) => {
      const item = document.createElement("span");
      item.innerHTML = '<span class="key" style="background:' + g.color + '"></span>';
      item.appendChild(document.createTextNode(g.name + " (" + counts[k] + ")"));
      legend.appendChild(item);
    });
  }

  function draw() {
    context.clearRect(0, 0, width, height);
    cells = new Map();
    drawn = 0;
    // Not picked first, focus tags last, so picks stay on top.
    for (let k = 0; k < data.groups.length; k++) {
      if (!colours) context.fillStyle = data.groups[k].color;
      const small = count > 20000 ? 2 : count > 2000 ? 3 : 6; // fewer points, larger dots
      const size = k === 0 ? small : small + 2;
      for (let i = 0; i < count; i++) {
        if (group[i] !== k) continue;
        const [sx, sy] = screenOf(i);
        if (colours) context.fillStyle = colours[i];
        context.fillRect(sx - size / 2, sy - size / 2, size, size);
        drawn++;
        if (sx >= 0 && sy >= 0 && sx <= width && sy <= height) {
          const key = Math.floor(sx / 12) + "," + Math.floor(sy / 12);
          let cell = cells.get(key);
          if (!cell) { cell = []; cells.set(key, cell); }
          cell.push(i);
        }
      }
    }
    if (selection.size) {
      context.strokeStyle = "#111";
      context.lineWidth = 1;
      for (const i of selection) {
        const [sx, sy] = screenOf(i);
        context.strokeRect(sx - 4, sy - 4, 8, 8);
      }
    }
    api.drawn = drawn;
  }

  function nearest(px, py) {
    let best = -1, bestDistance = 8 * 8;
    const gx = Math.floor(px / 12), gy = Math.floor(py / 12);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of cells.get((gx + dx) + "," + (gy + dy)) || []) {
          const [sx, sy] = screenOf(i);
          const d = (sx - px) ** 2 + (sy - py) ** 2;
          if (d < bestDistance || (d === bestDistance && group[i] > group[best])) { best = i; bestDistance = d; }
        }
      }
    }
    return best;
  }

  function showTip(i, px, py) {
    if (i < 0) { tip.style.display = "none"; return; }
    const parts = [];
    if (thumb[i] >= 0 && data.thumbs[thumb[i]]) parts.push('<img src="' + data.thumbs[thumb[i]] + '" alt="">');
    const label = document.createElement("div");
    label.textContent = data.paths[i];
    const detail = Object.keys(metrics).map((name) => {
      const v = metrics[name][i];
      const shown = data.logScale.includes(name) ? Math.pow(10, v) : v; // carried as log10
      return isFinite(v) ? name + " " + shown.toPrecision(3) : null;
    }).filter(Boolean).join(" · ");
    tip.innerHTML = parts.join("");
    tip.appendChild(label);
    const more = document.createElement("div");
    more.style.color = "#5f6b7a";
    more.textContent = data.groups[group[i]].name + " · " + detail;
    tip.appendChild(more);
    tip.style.left = Math.min(px + 14, width - 290) + "px";
    tip.style.top = Math.min(py + 14, height - 200) + "px";
    tip.style.display = "block";
    api.hovered = i;
  }

  function inside(polygon, px, py) {
    let result = false;
    for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
      const [ax, ay] = polygon[a], [bx, by] = polygon[b];
      if ((ay > py) !== (by > py) && px < ((bx - ax) * (py - ay)) / (by - ay) + ax) result = !result;
    }
    return result;
  }

  function select(polygon) {
    selection = new Set();
    if (polygon.length >= 3) {
      for (let i = 0; i < count; i++) {
        const [sx, sy] = screenOf(i);
        if (inside(polygon, sx, sy)) selection.add(i);
      }
    }
    downloadButton.disabled = selection.size === 0;
    selectedLabel.textContent = selection.size ? selection.size + " selected" : "";
    draw();
    return selection.size;
  }

  function download() {
    const text = Array.from(selection).sort((a, b) => a - b).map((i) => data.paths[i]).join("\n") + "\n";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = "coresift-selection.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  let dragging = null, polygon = null;
  canvas.addEventListener("mousedown", (event) => {
    const at = [event.offsetX, event.offsetY];
    if (lassoMode) polygon = [at];
    else { dragging = { x: at[0], y: at[1], cx: view.cx, cy: view.cy }; canvas.style.cursor = "grabbing"; }
  });
  window.addEventListener("mouseup", () => {
    if (polygon) { select(polygon); polygon = null; }
    dragging = null;
    canvas.style.cursor = "";
  });
  canvas.addEventListener("mousemove", (event) => {
    const px = event.offsetX, py = event.offsetY;
    if (polygon) {
      polygon.push([px, py]);
      draw();
      context.strokeStyle = "#111";
      context.beginPath();
      polygon.forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
      context.stroke();
      return;
    }
    if (dragging) {
      view.cx = dragging.cx - (px - dragging.x) / view.scale;
      view.cy = dragging.cy + (py - dragging.y) / view.scale;
      draw();
      return;
    }
    showTip(nearest(px, py), px, py);
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = Math.exp(-event.deltaY * 0.0015);
    const px = event.offsetX, py = event.offsetY;
    const dataX = (px - width / 2) / view.scale + view.cx;
    const dataY = (height / 2 - py) / view.scale + view.cy;
    view.scale *= factor;
    view.cx = dataX - (px - width / 2) / view.scale;
    view.cy = dataY - (height / 2 - py) / view.scale;
    draw();
  }, { passive: false });
  lassoButton.addEventListener("click", () => {
    lassoMode = !lassoMode;
    lassoButton.classList.toggle("on", lassoMode);
    canvas.classList.toggle("lasso", lassoMode);
  });
  downloadButton.addEventListener("click", download);
  document.getElementById("reset").addEventListener("click", () => { fit(); draw(); });
  colourSelect.addEventListener("change", () => { colourBy(colourSelect.value); drawLegend(); draw(); });
  window.addEventListener("resize", () => { resize(); draw(); });

  // For scripted checks (the tests drive a real browser through these).
  const api = {
    drawn: 0,
    hovered: -1,
    count: count,
    screenOf: (i) => screenOf(i),
    pathOf: (i) => data.paths[i],
    select: (poly) => select(poly),
    selection: () => Array.from(selection).map((i) => data.paths[i]),
  };
  window.coresiftReport = api;

  resize();
  fit();
  drawLegend();
  draw();
})();
