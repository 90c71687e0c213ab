// soundalike web app: the map page (#/map), over GET /api/map. Loaded before app.js; it uses app.js's helpers
// (el, api, clock, trackName, playSegment, audioUrl, player, view) and radio.js's drawPlaylist.
//   #/map?colour=cluster      colour by a label field (cluster is what `soundalike clusters` stores)
//   #/map?colour=bpm          or by a descriptor (bpm, loudness) or genre
// Every track is a dot on a canvas; near dots sound alike. Hover shows the track, a click plays it (and offers
// to open it), dragging draws a lasso: the tracks inside become a playlist, or get a label. A legend entry
// selects its tracks (for keyboards too).
"use strict";

const MAP_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#8cd17d", "#86bcb6", "#d37295", "#a0cbe8", "#fabfd2"];
const MAP_OTHER = "#9aa0a6";
const MAP_RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // viridis stops
const mapState = { data: null, colourOf: null, selected: new Set(), screen: [], canvas: null, draw: null };

function rampColour(t) {
  const x = Math.min(1, Math.max(0, t)) * (MAP_RAMP.length - 1);
  const i = Math.min(MAP_RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const c = MAP_RAMP[i].map((v, k) => Math.round(v + f * (MAP_RAMP[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function mapValue(p, colour) {
  if (colour === "bpm" || colour === "loudness" || colour === "genre") return p[colour];
  return p.labels[colour];
}

// colour scheme for one field: categorical (a colour for each of the commonest values) or numeric (a ramp)
function colourScheme(items, colour) {
  const values = items.map((p) => mapValue(p, colour));
  const present = values.filter((v) => v !== null && v !== undefined && v !== "");
  if (present.length && present.every((v) => typeof v === "number")) {
    const lo = Math.min(...present), hi = Math.max(...present);
    const of = (v) => (typeof v === "number" ? rampColour(hi > lo ? (v - lo) / (hi - lo) : 0.5) : MAP_OTHER);
    return { kind: "numeric", lo, hi, of, legend: [] };
  }
  const counts = new Map();
  for (const v of present) counts.set(String(v), (counts.get(String(v)) || 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0], undefined, { numeric: true }));
  const shown = ranked.slice(0, MAP_PALETTE.length);
  const colours = new Map(shown.map(([v], i) => [v, MAP_PALETTE[i]]));
  const of = (v) => (v === null || v === undefined || v === "" ? MAP_OTHER : colours.get(String(v)) || MAP_OTHER);
  const legend = shown.map(([v, n]) => ({ value: v, count: n, colour: colours.get(v) }));
  const rest = present.length - shown.reduce((s, [, n]) => s + n, 0) + (values.length - present.length);
  if (rest) legend.push({ value: null, count: rest, colour: MAP_OTHER });
  return { kind: "categorical", of, legend };
}

function insidePolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

async function renderMap(params) {
  if (!radioListening) {  // radio.js's queue: "Play all" of a selection's playlist goes on to the next track
    player.addEventListener("ended", () => { if (radioQueue.active) playQueued(radioQueue.index + 1); });
    radioListening = true;
  }
  const colourSelect = el("select", { id: "map-colour", "aria-label": "Colour the tracks by" });
  const status = el("span", { class: "hint", id: "map-status", role: "status" }, "loading the map…");
  const canvas = el("canvas", { id: "map-canvas", class: "map-canvas", tabindex: "0", role: "img",
    "aria-label": "Map of the library: each dot a track, near dots sound alike. Drag to select tracks; the legend selects a group." });
  const tip = el("div", { class: "map-tip", id: "map-tip", hidden: true });
  const legend = el("ul", { class: "map-legend", id: "map-legend", "aria-label": "Colours (select a group)" });
  const now = el("p", { class: "map-now", id: "map-now", "aria-live": "polite" });
  const selection = el("section", { class: "panel map-selection", id: "map-selection", hidden: true, "aria-labelledby": "map-sel-h" });
  const errorBox = el("p", { class: "alert", role: "alert", id: "map-error", hidden: true });
  const out = el("section", { id: "playlist", "aria-live": "polite" });
  view.replaceChildren(
    el("h1", {}, "Map"),
    el("div", { class: "row wrap" }, el("label", { for: "map-colour" }, "Colour by"), colourSelect, status),
    el("div", { class: "map-wrap" }, canvas, tip), legend, now, errorBox, selection, out);
  const fail = (text) => { errorBox.textContent = text; errorBox.hidden = !text; };
  mapState.selected = new Set();
  mapState.canvas = canvas;

  let data;
  try {
    data = await api("/api/map");
  } catch (e) {
    status.textContent = "";
    fail(e.message);
    return;
  }
  mapState.data = data;
  const fields = [...data.label_fields];
  const choices = [...fields.filter((f) => data.clusters[f]), ...fields.filter((f) => !data.clusters[f]), "genre", "bpm", "loudness"];
  let colour = params.get("colour") || choices[0];
  if (!choices.includes(colour)) colour = choices[0];
  colourSelect.replaceChildren(...choices.map((c) => el("option", { value: c, selected: c === colour }, c)));
  colourSelect.addEventListener("change", () => { location.hash = `#/map?${new URLSearchParams({ colour: colourSelect.value })}`; });
  const placed = data.placed ? ` · ${data.placed} placed since by their neighbours` : "";
  status.textContent = `${data.items.length} tracks · ${data.method || "no map"}${placed}`;
  let scheme = colourScheme(data.items, colour);

  const ctx = canvas.getContext("2d");
  const draw = (lasso) => {
    const box = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.width)), h = Math.max(1, Math.round(box.height));
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pad = 18, size = Math.min(w, h) - 2 * pad, ox = (w - size) / 2, oy = (h - size) / 2;
    const r = data.items.length > 3000 ? 1.6 : data.items.length > 500 ? 2.5 : 4;
    const any = mapState.selected.size > 0;
    mapState.screen = data.items.map((p) => [ox + ((p.x + 1) / 2) * size, oy + ((1 - p.y) / 2) * size]);
    data.items.forEach((p, i) => {
      const [x, y] = mapState.screen[i];
      ctx.globalAlpha = any && !mapState.selected.has(p.id) ? 0.25 : 1;
      ctx.fillStyle = scheme.of(mapValue(p, colour));
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill();
      if (mapState.selected.has(p.id)) { ctx.strokeStyle = "#111"; ctx.lineWidth = 1; ctx.stroke(); }
    });
    ctx.globalAlpha = 1;
    if (lasso && lasso.length > 1) {
      ctx.strokeStyle = "#111"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(...lasso[0]);
      for (const q of lasso.slice(1)) ctx.lineTo(...q);
      ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);
    }
  };
  mapState.draw = draw;

  const drawLegend = () => {
    if (scheme.kind === "numeric") {
      legend.replaceChildren(el("li", { class: "map-ramp" }, el("span", {}, scheme.lo.toFixed(0)),
        el("span", { class: "ramp", "aria-hidden": "true" }), el("span", {}, `${scheme.hi.toFixed(0)} ${colour}`)));
      return;
    }
    legend.replaceChildren(...scheme.legend.map((g) => el("li", {},
      el("button", { type: "button", class: "small legend-item", "data-value": g.value ?? "",
        onclick: () => select(data.items.filter((p) => (g.value === null
          ? scheme.of(mapValue(p, colour)) === MAP_OTHER : String(mapValue(p, colour)) === g.value)).map((p) => p.id)) },
      el("span", { class: "swatch", style: `background:${g.colour}`, "aria-hidden": "true" }),
      `${g.value === null ? "other / none" : g.value} (${g.count})`))));
  };

  const nearest = (x, y, within = 10) => {
    let best = -1, bestD = within * within;
    mapState.screen.forEach(([sx, sy], i) => {
      const d = (sx - x) ** 2 + (sy - y) ** 2;
      if (d <= bestD) { bestD = d; best = i; }
    });
    return best;
  };
  const describe = (p) => {
    const bits = [p.artist, p.album].filter(Boolean).join(" · ");
    const group = mapValue(p, colour);
    return [trackName(p), bits, group !== null && group !== undefined ? `${colour}: ${typeof group === "number" ? group.toFixed(1) : group}` : ""]
      .filter(Boolean);
  };
  const showTip = (i, x, y) => {
    if (i < 0) { tip.hidden = true; return; }
    const p = data.items[i];
    tip.replaceChildren(...describe(p).map((line, k) => el(k ? "span" : "strong", {}, line)));
    tip.hidden = false;
    tip.dataset.trackId = p.id;
    const wrap = canvas.getBoundingClientRect();
    tip.style.left = `${Math.min(x + 12, wrap.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${Math.max(0, y - tip.offsetHeight - 8)}px`;
  };
  const play = (p) => {
    const button = el("button", { type: "button", class: "small", "aria-pressed": "false", "aria-label": `Play ${trackName(p)}`,
      onclick: (ev) => playSegment(player, audioUrl(p.id), 0, null, { button: ev.currentTarget }) }, "▶");
    now.replaceChildren(button, " ", el("a", { href: `#/track/${p.id}`, id: "map-open" }, `Open ${trackName(p)}`),
      el("span", { class: "hint" }, ` · ${describe(p).slice(1).join(" · ")}`));
    now.dataset.trackId = p.id;
    playSegment(player, audioUrl(p.id), 0, null, { button });
  };

  function select(ids) {
    mapState.selected = new Set(ids);
    draw();
    drawSelection();
  }

  function drawSelection() {
    const ids = [...mapState.selected];
    selection.hidden = !ids.length;
    out.replaceChildren();
    if (!ids.length) return;
    const byId = new Map(data.items.map((p) => [p.id, p]));
    const name = el("input", { type: "text", id: "map-label-name", value: "mood", autocomplete: "off", "aria-label": "label field" });
    const value = el("input", { type: "text", id: "map-label-value", autocomplete: "off", placeholder: "calm", "aria-label": "label value" });
    const note = el("span", { class: "hint", id: "map-label-note", role: "status" });
    const tooMany = ids.length > 500;
    selection.replaceChildren(
      el("h2", { id: "map-sel-h" }, `${ids.length} ${ids.length === 1 ? "track" : "tracks"} selected`),
      el("div", { class: "row wrap" },
        el("button", { type: "button", class: "primary", id: "map-playlist", disabled: tooMany,
          onclick: async () => {
            const q = new URLSearchParams();
            for (const id of ids) q.append("id", id);
            try { drawPlaylist(out, await api(`/api/map/playlist?${q}`), "/api/map/playlist", q); fail(""); }  // radio.js
            catch (e) { fail(e.message); }
          } }, tooMany ? "Playlist: select at most 500" : "Make a playlist"),
        el("button", { type: "button", id: "map-clear", onclick: () => select([]) }, "Clear selection")),
      el("form", { class: "row wrap", id: "map-label-form", onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await api("/api/map/labels", { method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ track_ids: ids, name: name.value.trim(), value: value.value.trim() || null }) });
          for (const id of ids) {
            const p = byId.get(id);
            if (r.value === null) delete p.labels[r.name]; else p.labels[r.name] = r.value;
          }
          if (!data.label_fields.includes(r.name)) data.label_fields.push(r.name);
          note.textContent = r.value === null ? `removed ${r.name} from ${r.tracks} tracks` : `${r.name} = ${r.value} on ${r.tracks} tracks`;
          fail("");
          if (r.name === colour) { scheme = colourScheme(data.items, colour); drawLegend(); draw(); }
        } catch (e) { fail(e.message); }
      } },
      el("label", { for: "map-label-name" }, "Set label"), name, el("span", {}, "="), value,
      el("button", { type: "submit", id: "map-label-go" }, "Set"), note),
      el("ul", { class: "map-picked" }, ids.slice(0, 30).map((id) => el("li", {},
        el("a", { href: `#/track/${id}` }, trackName(byId.get(id))))),
        ids.length > 30 ? el("li", { class: "hint" }, `… and ${ids.length - 30} more`) : null));
  }

  let lasso = null;
  const local = (ev) => { const b = canvas.getBoundingClientRect(); return [ev.clientX - b.left, ev.clientY - b.top]; };
  canvas.addEventListener("pointerdown", (ev) => {
    lasso = [local(ev)];
    canvas.setPointerCapture(ev.pointerId);
    tip.hidden = true;
  });
  canvas.addEventListener("pointermove", (ev) => {
    const [x, y] = local(ev);
    if (lasso) { lasso.push([x, y]); draw(lasso); return; }
    showTip(nearest(x, y), x, y);
  });
  canvas.addEventListener("pointerup", (ev) => {
    if (!lasso) return;
    const pts = lasso;
    lasso = null;
    const [x0, y0] = pts[0];
    const moved = pts.some(([x, y]) => Math.abs(x - x0) + Math.abs(y - y0) > 6);
    if (!moved) {  // a click: play the track under it
      draw();
      const i = nearest(x0, y0);
      if (i >= 0) play(data.items[i]);
      return;
    }
    select(data.items.filter((p, i) => insidePolygon(mapState.screen[i][0], mapState.screen[i][1], pts)).map((p) => p.id));
  });
  canvas.addEventListener("pointerleave", () => { if (!lasso) tip.hidden = true; });
  canvas.addEventListener("pointercancel", () => { lasso = null; draw(); });
  drawLegend();
  draw();
}

window.addEventListener("resize", () => { if (mapState.canvas && mapState.canvas.isConnected && mapState.draw) mapState.draw(); });

// where a track's dot is, in page coordinates (for tests and bookmarklets): {x, y} or null
window.soundalikeMap = {
  at(id) {
    if (!mapState.data || !mapState.canvas) return null;
    const i = mapState.data.items.findIndex((p) => p.id === id);
    if (i < 0) return null;
    const b = mapState.canvas.getBoundingClientRect();
    return { x: b.left + mapState.screen[i][0], y: b.top + mapState.screen[i][1] };
  },
  ids() { return mapState.data ? mapState.data.items.map((p) => p.id) : []; },
  selected() { return [...mapState.selected]; },
};
