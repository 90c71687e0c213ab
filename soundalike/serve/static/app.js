// soundalike web app: plain JavaScript, no build step, no third-party code.
// Pages (hash routes): #/ search, #/track/ID, #/library, #/radio (radio.js), #/map (map.js),
// #/duplicates (duplicates.js), #/classify (classify.js).
// Everything comes from the /api routes.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const view = $("#view");
const player = $("#player");     // catalogue tracks
const refPlayer = $("#refplayer"); // the reference file

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function clock(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  const sign = s < 0 ? "-" : "";
  s = Math.abs(s);
  const m = Math.floor(s / 60);
  const sec = s - m * 60;
  return `${sign}${m}:${sec < 10 ? "0" : ""}${sec.toFixed(1)}`;
}

function pct(score) { return `${(score * 100).toFixed(1)} %`; }
function warpText(hit) {  // the pitch or tempo change the landmarks found between reference and track
  const signed = (x) => `${x > 0 ? "+" : ""}${x}`;
  if (hit.semitones) return ` (${signed(hit.semitones)} semitone${Math.abs(hit.semitones) === 1 ? "" : "s"})`;
  const change = hit.tempo ? Math.round((hit.tempo - 1) * 100) : 0;
  return change ? ` (${signed(change)} % tempo)` : "";
}
function trackName(t) { return t.title || t.name || (t.path || "").split("/").pop() || `#${t.track_id ?? t.id}`; }
function quote(s) { return "'" + String(s).replace(/'/g, "''") + "'"; }

// ---------------------------------------------------------------- API with the optional key

const KEY = "soundalike_key";

function storedKey() { return localStorage.getItem(KEY) || ""; }

function saveKey(key) {
  localStorage.setItem(KEY, key);
  // <audio> elements cannot send headers: the server also accepts this cookie (same site only).
  document.cookie = `${KEY}=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
}

let keyPrompt = null;
function askForKey(message) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("#keydialog");
  $("#keyerror").textContent = message || "";
  keyPrompt = new Promise((resolve) => {
    $("#keyform").onsubmit = () => {
      saveKey($("#keyinput").value.trim());
      keyPrompt = null;
      resolve(true);
    };
    dialog.oncancel = () => { keyPrompt = null; resolve(false); }; // Escape: give up for now
  });
  dialog.showModal();
  $("#keyinput").focus();
  return keyPrompt;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const headers = Object.assign({}, opts.headers || {});
    if (storedKey()) headers["X-API-Key"] = storedKey();
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    if (res.status === 401) {
      if (await askForKey(storedKey() ? "That key was not accepted." : "")) continue;
      throw new ApiError(401, "this server needs an API key");
    }
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
    return data;
  }
  throw new ApiError(401, "no valid API key");
}

// ---------------------------------------------------------------- playing segments

const playing = { stopAt: null, wave: null, button: null, element: null };

function stopPlayback() {
  for (const p of [player, refPlayer]) if (!p.paused) p.pause();
  if (playing.button) playing.button.setAttribute("aria-pressed", "false");
  if (playing.wave) playing.wave.setPlayhead(null);
  Object.assign(playing, { stopAt: null, wave: null, button: null, element: null });
}

async function playSegment(element, src, start, end, { wave = null, button = null } = {}) {
  if (playing.button === button && button && !element.paused) { stopPlayback(); return; }
  stopPlayback();
  if (src && element.dataset.src !== src) {
    element.src = src;
    element.dataset.src = src;
  }
  Object.assign(playing, { stopAt: end, wave, button, element });
  if (button) button.setAttribute("aria-pressed", "true");
  const seek = () => { element.currentTime = start || 0; };
  if (element.readyState >= 1) seek();
  else element.addEventListener("loadedmetadata", seek, { once: true });
  try {
    await element.play();
  } catch (e) {
    if (e.name !== "AbortError") setStatus(`cannot play: ${e.message}`);
  }
}

for (const p of [player, refPlayer]) {
  p.addEventListener("timeupdate", () => {
    if (playing.element !== p) return;
    if (playing.wave) playing.wave.setPlayhead(p.currentTime);
    if (playing.stopAt !== null && p.currentTime >= playing.stopAt) stopPlayback();
  });
  p.addEventListener("ended", stopPlayback);
}

function audioUrl(id) { return `/api/tracks/${id}/audio`; }

const waveCache = new Map();
function trackPeaks(id, points = 600) {
  const key = `${id}:${points}`;
  if (!waveCache.has(key)) waveCache.set(key, api(`/api/tracks/${id}/waveform?points=${points}`));
  return waveCache.get(key);
}

function setStatus(text) { const s = $("#search-status"); if (s) s.textContent = text; }

// An error on the search page: an alert (announced, in the error style), cleared by the next action.
function showError(text) {
  const box = $("#search-error");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}
function clearError() { showError(""); }

// "Find similar" is never disabled while it searches (a disabled button drops the focus to the page):
// aria-disabled says it is busy, and a second click waits for the first search.
function setBusy(button, busy) {
  if (busy) button.setAttribute("aria-disabled", "true"); else button.removeAttribute("aria-disabled");
}
function isBusy(button) { return button.getAttribute("aria-disabled") === "true"; }

// ---------------------------------------------------------------- search page

// file: the uploaded reference; track: a library track searched with ("Find similar to this track")
// like: the aspect results are ranked by (aspects.py; "" for the overall sound), kept across pages
const search = { file: null, fileUrl: null, wave: null, selection: null, lastResult: null, track: null, like: "" };

function renderSearch() {
  view.replaceChildren($("#search-tpl").content.cloneNode(true));
  const drop = $("#drop");
  const input = $("#file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer.files.length) chooseFile(ev.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => { if (input.files.length) chooseFile(input.files[0]); });

  search.wave = new Wave($("#refwave"), { selectable: true, onselect: (sel) => setSelection(sel, false) });
  $("#sel-start").addEventListener("change", rangeFromInputs);
  $("#sel-end").addEventListener("change", rangeFromInputs);
  $("#sel-clear").addEventListener("click", () => setSelection(null, true));
  $("#ref-play").addEventListener("click", (ev) => {
    const [a, b] = search.selection || [0, search.wave.duration];
    playSegment(refPlayer, search.fileUrl, a, b, { wave: search.wave, button: ev.currentTarget });
  });
  $("#go").addEventListener("click", runAudioSearch);
  $("#f-like").value = search.like;
  $("#f-like").addEventListener("change", () => {  // the current results again, ranked the new way
    search.like = $("#f-like").value;
    const kind = search.lastResult && search.lastResult.kind;
    if (kind === "track" && search.track) runTrackSearch(search.track);
    else if (kind === "audio" && search.file) runAudioSearch();
  });
  $("#filters").addEventListener("input", () => {
    const where = whereFromFilters();
    $("#filter-note").textContent = where ? `filter: ${where}` : "";
  });
  $("#text-form").addEventListener("submit", (ev) => { ev.preventDefault(); runTextSearch(); });

  if (search.pendingTrack) {
    const t = search.pendingTrack;
    search.pendingTrack = null;
    useTrack(t);
    runTrackSearch(t);
  } else {
    if (search.file) showReference();
    else if (search.track) showTrackReference();
    if (search.lastResult) renderResults(search.lastResult.data, search.lastResult.kind);
  }
}

function forgetFile() {
  // the uploaded reference, its waveform, range and player source: gone, so nothing stale can play
  if (search.fileUrl) URL.revokeObjectURL(search.fileUrl);
  Object.assign(search, { file: null, fileUrl: null, selection: null, refData: null });
  refPlayer.removeAttribute("src");
  refPlayer.dataset.src = "";
  if (search.wave) { search.wave.selection = null; search.wave.set([], 0); search.wave.setRegions([]); }
  const ref = $("#ref");
  if (ref) ref.hidden = true;
  const go = $("#go");
  if (go) go.disabled = true;
}

function useTrack(t) {
  // a library track is the reference now: the uploaded file (if any) is put aside
  stopPlayback();
  forgetFile();
  search.track = t;
  search.lastResult = null;
  showTrackReference();
}

function showTrackReference() {
  const box = $("#track-ref");
  box.replaceChildren("Searching with the library track ",
    el("a", { href: `#/track/${search.track.id}` }, trackName(search.track)), ". Drop a file to search with it instead.");
  box.hidden = false;
}

async function chooseFile(file) {
  stopPlayback();
  forgetFile();
  clearError();
  search.track = null;
  $("#track-ref").hidden = true;
  search.file = file;
  search.fileUrl = URL.createObjectURL(file);
  search.lastResult = null;
  $("#results").replaceChildren();
  showReference();
  setStatus("reading the reference…");
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("points", "1000");
  try {
    const data = await api("/api/waveform", { method: "POST", body: form });
    if (search.file !== file) return;  // another file was chosen meanwhile
    search.refData = data;
    search.wave.set(data.peaks, data.duration);
    $("#go").disabled = false;
    setStatus(`${clock(data.duration)} of audio; drag on the waveform to search with a part of it`);
    updateRangeLabel();
  } catch (e) {
    if (search.file !== file) return;
    forgetFile();
    setStatus("");
    showError(e.message.includes(file.name) ? e.message : `${file.name}: ${e.message}`);
  }
}

function showReference() {
  $("#ref").hidden = false;
  if (search.refData && !search.wave.duration) {
    search.wave.set(search.refData.peaks, search.refData.duration);
    search.wave.selection = search.selection;
  }
  $("#ref-name").textContent = search.file.name;
  if (search.wave.duration) $("#go").disabled = false;
  updateRangeLabel();
}

function setSelection(sel, redraw) {
  search.selection = sel && sel[1] - sel[0] >= 0.25 ? sel : null;
  if (redraw) { search.wave.selection = search.selection; search.wave.draw(); }
  updateRangeLabel();
}

function rangeFromInputs() {
  const a = parseFloat($("#sel-start").value);
  const b = parseFloat($("#sel-end").value);
  const d = search.wave.duration;
  if (Number.isFinite(a) && Number.isFinite(b) && b > a) setSelection([Math.max(0, a), Math.min(d || b, b)], true);
}

function updateRangeLabel() {
  const sel = search.selection;
  const d = search.wave ? search.wave.duration : 0;
  $("#sel-start").value = sel ? sel[0].toFixed(1) : "";
  $("#sel-end").value = sel ? sel[1].toFixed(1) : "";
  $("#ref-range").textContent = sel ? `searching ${clock(sel[0])}–${clock(sel[1])}` : d ? `whole file, ${clock(d)}` : "";
}

function whereFromFilters() {
  const parts = [];
  const num = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
  const range = (field, lo, hi) => {
    if (lo !== null && hi !== null) parts.push(`${field} between ${lo} and ${hi}`);
    else if (lo !== null) parts.push(`${field} >= ${lo}`);
    else if (hi !== null) parts.push(`${field} <= ${hi}`);
  };
  range("bpm", num("#f-bpm-min"), num("#f-bpm-max"));
  range("duration", num("#f-dur-min"), num("#f-dur-max"));
  const genre = $("#f-genre").value.trim();
  if (genre) parts.push(`genre contains ${quote(genre)}`);
  const artist = $("#f-artist").value.trim();
  if (artist) parts.push(`artist contains ${quote(artist)}`);
  const key = $("#f-key").value.trim();
  if (key) parts.push(`key = ${quote(key)}`);
  const tagMin = num("#f-tag-min") ?? 0.3;
  for (const tag of $("#f-tags").value.split(",").map((t) => t.trim()).filter(Boolean)) {
    parts.push(`\`tag.${tag.replaceAll("`", "")}\` >= ${tagMin}`);  // a track's mean tag probability
  }
  const raw = $("#f-where").value.trim();
  if (raw) parts.push(`(${raw})`);
  return parts.join(" and ");
}

// the feature groups an aspect weighs (aspects.GROUPS), as a result card names them
const GROUP_NAMES = { embedding: "sound", instrument_tags: "instruments", genre_tags: "genre", mood_tags: "mood",
  rhythm_tags: "beat", tempo: "tempo", key: "key" };

function likeNote(data) { return data.like ? `, alike in ${data.like}` : ""; }

function topN() { const n = parseInt($("#f-top").value, 10); return Number.isFinite(n) && n > 0 ? n : 10; }

async function runAudioSearch() {
  const go = $("#go");
  if (!search.file || isBusy(go)) return;
  stopPlayback();
  clearError();
  const form = new FormData();
  form.append("file", search.file, search.file.name);
  if (search.selection) {
    form.append("start", search.selection[0].toFixed(2));
    form.append("end", search.selection[1].toFixed(2));
  }
  form.append("top", String(topN()));
  if (search.like) form.append("like", search.like);
  const where = whereFromFilters();
  if (where) form.append("where", where);
  setStatus("searching…");
  setBusy(go, true);
  try {
    const t0 = performance.now();
    const data = await api("/api/search", { method: "POST", body: form });
    search.lastResult = { data, kind: "audio" };
    setStatus(`${data.hits.filter(hasEvidence).length} results in ${Math.round(performance.now() - t0)} ms${likeNote(data)}`);
    renderResults(data, "audio");
  } catch (e) {
    setStatus("");
    showError(e.message);
    $("#results").replaceChildren();
  } finally {
    setBusy(go, false);
  }
}

async function runTextSearch() {
  const query = $("#text").value.trim();
  clearError();
  if (!query) {
    showError("Type a few words that describe the sound, e.g. sad piano ballad.");
    $("#text").focus();
    return;
  }
  stopPlayback();
  const body = { query, top: topN() };
  const where = whereFromFilters();
  if (where) body.where = where;
  setStatus("searching…");
  try {
    const data = await api("/api/search/text", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    search.lastResult = { data, kind: "text" };
    setStatus(`${data.hits.length} results for “${query}”`);
    renderResults(data, "text");
  } catch (e) {
    setStatus("");
    showError(e.message);
    $("#results").replaceChildren();
  }
}

function copiesNote(hit) {
  // other files of this hit's recording, folded into it by the search (Hit.copies): "+1 copy: name"
  const copies = hit.copies || [];
  if (!copies.length) return null;
  return el("p", { class: "meta copies" }, `+${copies.length} ${copies.length === 1 ? "copy" : "copies"}: `,
    copies.map((c, i) => [i ? ", " : "", el("a", { href: `#/track/${c.track_id}` }, c.title || c.path.split("/").pop())]));
}

function tagList(tags) {
  if (!tags || !tags.length) return null;
  return el("ul", { class: "tags", "aria-label": "top tags" },
    tags.map((t) => el("li", { title: `${(t.p * 100).toFixed(0)} %` }, t.name)));
}

// Whether anything matched (Hit.evidence): a track that only filled a place in the list is not shown as a result.
function hasEvidence(hit) {
  return Boolean(hit.votes || (hit.matches && hit.matches.length) || hit.copy || hit.score >= 0.0005);
}

function renderResults(data, kind) {
  const box = $("#results");
  box.replaceChildren();
  // e.g. an indexing run under way: what the vector index lacked was searched exactly, and the result says so
  for (const w of data.warnings || []) box.append(el("p", { class: "warning", role: "status", text: w }));
  if (kind !== "text") {
    const hits = data.hits.filter(hasEvidence);
    const hidden = data.hits.length - hits.length;
    data = Object.assign({}, data, { hits });
    if (hidden) box.append(el("p", { class: "hint hidden-note" },
      `${hidden} more ${hidden === 1 ? "track" : "tracks"} filled the list with nothing that matched: not shown.`));
  }
  if (!data.hits.length) {
    box.append(el("p", { text: "No matches. Try a longer part of the reference, or fewer filters." }));
    return;
  }
  if (kind === "text" && data.message) box.append(el("p", { class: "hint", role: "note", text: data.message }));
  if (kind === "audio" && search.wave) {
    search.wave.setRegions([]);
    box.append(el("p", { class: "hint" },
      "Highlighted: the parts of each track that matched. ▶ Result plays a matched part of the track, ",
      "▶ Reference the part of your file it matched (shown on your waveform above)."));
  }
  data.hits.forEach((hit, i) => box.append(resultCard(hit, i, kind)));
}

function resultCard(hit, i, kind) {
  const id = hit.track_id;
  const canvas = el("canvas", { class: "wave small", height: "56", "aria-hidden": "true" });
  const wave = new Wave(canvas, {
    onseek: (t) => playSegment(player, audioUrl(id), t, null, { wave }),
  });
  const matches = (hit.matches || []).slice().sort((a, b) => b.similarity - a.similarity).slice(0, 3)
    .sort((a, b) => a.query_start - b.query_start);
  const allRegions = (hit.matches || []).map((m) => ({ start: m.track_start, end: m.track_end, kind: "match" }));
  trackPeaks(id).then((w) => { wave.set(w.peaks, w.duration); wave.setRegions(allRegions); }).catch(() => {});

  const activate = (m) => {
    wave.setRegions(allRegions.concat([{ start: m.track_start, end: m.track_end, kind: "active" }]));
    if (search.wave) search.wave.setRegions([{ start: m.query_start, end: m.query_end, kind: "active" }]);
  };
  const name = trackName(hit);
  const rows = matches.map((m) => {
    const label = `${clock(m.query_start)}–${clock(m.query_end)} ↔ ${clock(m.track_start)}–${clock(m.track_end)}`;
    return el("li", {},
      el("span", { class: "pair" }, label, el("span", { class: "hint" }, `  sim ${m.similarity.toFixed(2)}`)),
      el("button", {
        type: "button", class: "small play-result", "aria-pressed": "false",
        "aria-label": `Play ${clock(m.track_start)} to ${clock(m.track_end)} of ${name}`,
        onclick: (ev) => { activate(m); playSegment(player, audioUrl(id), m.track_start, m.track_end, { wave, button: ev.currentTarget }); },
      }, "▶ Result"),
      kind === "audio" && search.fileUrl ? el("button", {
        type: "button", class: "small play-ref", "aria-pressed": "false",
        "aria-label": `Play ${clock(m.query_start)} to ${clock(m.query_end)} of the reference`,
        onclick: (ev) => { activate(m); playSegment(refPlayer, search.fileUrl, m.query_start, m.query_end, { wave: search.wave, button: ev.currentTarget }); },
      }, "▶ Reference") : null);
  });
  const meta = [hit.artist, hit.album, clock(hit.duration)].filter(Boolean).join(" · ");
  const extra = [];
  if (kind === "text") {
    if (hit.bpm) extra.push(`${Number(hit.bpm).toFixed(0)} BPM`);
    const why = (hit.explanation || []).slice(0, 3).map((c) => `${c.name} ${c.score >= 0 ? "+" : ""}${c.score.toFixed(2)}`);
    if (why.length) extra.push(`why: ${why.join(", ")}`);
  }
  if (hit.aspect_scores) {  // each group: the share of the ranked tracks this one is closer than
    extra.push(Object.entries(hit.aspect_scores)
      .map(([g, p]) => `${GROUP_NAMES[g] || g} ${Math.round(p * 100)} %`).join(", "));
  }
  if (kind === "audio") {
    extra.push(`${hit.votes} ${hit.votes === 1 ? "vote" : "votes"}`);
    if (hit.offset !== null && hit.offset !== undefined) extra.push(`clip at ${clock(hit.offset)}`);
    if (hit.copy) extra.push(`copy${warpText(hit)}${hit.copy_confidence != null ? `, ${Math.round(hit.copy_confidence * 100)} % sure` : ""}`);
  }
  return el("article", { class: `card result${i === 0 ? " first" : ""}`, "data-track-id": id },
    el("div", { class: "card-head" },
      el("span", { class: "rank" }, `#${i + 1}`),
      el("h3", {}, el("a", { href: `#/track/${id}` }, name)),
      kind === "text"
        ? el("span", { class: "score", title: "text score: tag and keyword evidence, not a percentage" }, `score ${hit.score.toFixed(2)}`)
        : el("span", { class: "score", title: "score" }, pct(hit.score), el("span", { class: "visually-hidden" }, " match"))),
    el("div", { class: "meta" }, meta, extra.length ? ` · ${extra.join(" · ")}` : ""),
    copiesNote(hit),
    tagList(hit.tags),
    canvas,
    rows.length ? el("ul", { class: "matches", "aria-label": "matched segments" }, rows)
      : el("div", { class: "row" }, el("button", {
        type: "button", class: "small play-result", "aria-pressed": "false", "aria-label": `Play ${name}`,
        onclick: (ev) => playSegment(player, audioUrl(id), 0, null, { wave, button: ev.currentTarget }),
      }, "▶ Play")));
}

// ---------------------------------------------------------------- track page

async function renderTrack(id) {
  view.replaceChildren(el("p", { class: "hint", text: "loading…" }));
  let t;
  try {
    t = await api(`/api/tracks/${encodeURIComponent(id)}`);
  } catch (e) {
    view.replaceChildren(el("p", { class: "error", role: "alert", text: e.message }));
    return;
  }
  const name = trackName(t);
  document.title = `${name} · soundalike`;
  const headingFocused = document.activeElement === document.body || view.contains(document.activeElement);
  const canvas = el("canvas", { class: "wave", height: "96", tabindex: "0", "aria-label": "Waveform; click to play from there" });
  const wave = new Wave(canvas, { onseek: (s) => playSegment(player, audioUrl(t.id), s, null, { wave }) });
  canvas.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); playSegment(player, audioUrl(t.id), 0, null, { wave }); }
  });
  trackPeaks(t.id, 1000).then((w) => wave.set(w.peaks, w.duration)).catch(() => {});

  const fields = [
    ["artist", t.artist], ["album", t.album], ["genre", t.genre], ["year", t.year],
    ["duration", clock(t.duration)], ["format", [t.format, t.codec].filter(Boolean).join(" / ")],
    ["sample rate", t.sample_rate && `${t.sample_rate} Hz`], ["channels", t.channels],
    ["file", t.filename], ["segments", t.n_segments], ["track id", t.id],
  ];
  const desc = [
    ["tempo", t.bpm && `${Number(t.bpm).toFixed(1)} BPM`], ["key", t.key],
    ["loudness", t.loudness !== null && t.loudness !== undefined ? `${Number(t.loudness).toFixed(1)} LUFS` : null],
    ["true peak", t.true_peak !== null && t.true_peak !== undefined ? `${Number(t.true_peak).toFixed(1)} dBTP` : null],
    ["tag BPM", t.tag_bpm], ["tag key", t.tag_key],
  ];
  const kv = (rows) => el("dl", { class: "kv" }, rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  const labels = Object.entries(t.labels || {});
  const heat = el("canvas", { class: "heat", "aria-label": "Tags over time" });
  const shelf = el("div", { class: "shelf", id: "similar" }, el("p", { class: "hint", text: "finding similar sounds…" }));

  view.replaceChildren(
    el("h1", {}, name),
    el("div", { class: "row wrap" },
      el("button", { type: "button", class: "primary", id: "track-play", "aria-pressed": "false",
        onclick: (ev) => playSegment(player, audioUrl(t.id), 0, null, { wave, button: ev.currentTarget }) }, "▶ Play"),
      el("button", { type: "button", id: "track-search", onclick: () => searchWithTrack(t) }, "Find similar to this track"),
      el("a", { class: "button", id: "track-radio", href: `#/radio?seed=${t.id}` }, "Start radio"),
      el("a", { class: "button", id: "track-path", href: `#/radio?a=${t.id}` }, "Path from here")),
    canvas,
    el("div", { class: "two" },
      el("section", {}, el("h2", {}, "Metadata"), kv(fields),
        labels.length ? el("section", { id: "labels", "aria-labelledby": "labels-h" },
          el("h2", { id: "labels-h" }, "Your labels"), kv(labels)) : null),
      el("section", {}, el("h2", {}, "Descriptors"), kv(desc),
        el("h2", {}, "Top tags"), tagList(t.top_tags) || el("p", { class: "hint", text: "no tags" }))),
    el("section", {}, el("h2", {}, "Tags over time"), heat,
      el("p", { class: "hint", text: "Darker is more likely; one column per window." })),
    el("section", { "aria-labelledby": "similar-h" }, el("h2", { id: "similar-h" }, "Similar sounds"), shelf),
  );
  if (headingFocused) focusHeading();
  drawHeat(heat, t.tags_over_time, t.duration);
  try {
    const sim = await api(`/api/tracks/${t.id}/similar?top=8`);
    const hits = sim.hits.filter(hasEvidence);
    shelf.replaceChildren(...hits.map((h) => shelfCard(h)));
    if (!hits.length) shelf.replaceChildren(el("p", { class: "hint", text: "nothing similar yet" }));
  } catch (e) {
    shelf.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

function shelfCard(h) {
  const best = (h.matches || []).slice().sort((a, b) => b.similarity - a.similarity)[0];
  const start = best ? best.track_start : 0;
  const name = trackName(h);
  return el("article", { class: "card", "data-track-id": h.track_id },
    el("a", { href: `#/track/${h.track_id}` }, name),
    el("span", { class: "meta" }, [h.artist, clock(h.duration)].filter(Boolean).join(" · ")),
    el("span", { class: "score" }, pct(h.score)),
    copiesNote(h),
    tagList((h.tags || []).slice(0, 3)),
    el("button", {
      type: "button", class: "small play-similar", "aria-pressed": "false", "aria-label": `Play ${name}`,
      onclick: (ev) => playSegment(player, audioUrl(h.track_id), start, best ? start + 15 : null, { button: ev.currentTarget }),
    }, "▶ Play"));
}

function drawHeat(canvas, tot, duration) {
  if (!tot || !tot.tags.length) { canvas.hidden = true; return; }
  const rowH = 18;
  const labelW = 110;
  const draw = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = rowH * tot.tags.length;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.font = "12px system-ui, sans-serif";
    g.textBaseline = "middle";
    const span = Math.max(duration, 1e-6);
    tot.tags.forEach((tag, r) => {
      g.fillStyle = "#333";
      g.fillText(tag, 4, r * rowH + rowH / 2, labelW - 8);
      tot.values.forEach((vals, c) => {
        if (!vals) return;
        const x0 = labelW + (tot.starts[c] / span) * (w - labelW);
        const x1 = labelW + (Math.min(tot.ends[c], span) / span) * (w - labelW);
        g.fillStyle = `rgba(11, 95, 255, ${Math.min(1, vals[r]).toFixed(3)})`;
        g.fillRect(x0, r * rowH + 1, Math.max(1, x1 - x0), rowH - 2);
      });
    });
  };
  draw();
  new ResizeObserver(draw).observe(canvas);
}

function searchWithTrack(t) {
  search.pendingTrack = t;
  if ((location.hash || "#/") === "#/") route(); else location.hash = "#/";
}

async function runTrackSearch(t) {
  const form = new FormData();
  form.append("track", String(t.id));
  form.append("top", String(topN()));
  if (search.like) form.append("like", search.like);
  const where = whereFromFilters();
  if (where) form.append("where", where);
  setStatus(`searching with ${trackName(t)}…`);
  clearError();
  try {
    const data = await api("/api/search", { method: "POST", body: form });
    search.lastResult = { data, kind: "track" };
    setStatus(`${data.hits.filter(hasEvidence).length} tracks like ${trackName(t)}${likeNote(data)}`);
    renderResults(data, "track");
  } catch (e) { setStatus(""); showError(e.message); }
}

// ---------------------------------------------------------------- library page

const COLUMNS = [
  ["name", "Title"], ["artist", "Artist"], ["album", "Album", "hide-s"], ["duration", "Duration", "num"],
  ["bpm", "BPM", "num hide-s"], ["key", "Key", "hide-s"], ["id", "#", "num hide-s"],
];

async function renderLibrary(params) {
  const state = {
    offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
    limit: parseInt(params.get("limit") || "50", 10) || 50,
    sort: params.get("sort") || "name",  // the title, or the file name where there is none
    order: params.get("order") === "desc" ? "desc" : "asc",
    where: params.get("where") || "",
  };
  const go = (changes) => {
    const next = Object.assign({}, state, changes);
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v !== "" && v !== null) q.set(k, String(v));
    location.hash = `#/library?${q}`;
  };
  const filter = el("input", { type: "text", id: "lib-where", value: state.where,
    placeholder: "bpm > 120 and genre contains 'rock'", "aria-label": "filter expression", autocomplete: "off" });
  const form = el("form", { class: "row wrap", role: "search",
    onsubmit: (ev) => { ev.preventDefault(); go({ where: filter.value.trim(), offset: 0 }); } },
    filter, el("button", { type: "submit" }, "Filter"),
    state.where ? el("button", { type: "button", onclick: () => go({ where: "", offset: 0 }) }, "Clear") : null);
  const body = el("div", {}, el("p", { class: "hint", text: "loading…" }));
  const errorsBox = el("section", { "aria-labelledby": "errors-h" });
  view.replaceChildren(el("h1", {}, "Library"), form, body, errorsBox);

  const q = new URLSearchParams({ offset: state.offset, limit: state.limit, sort: state.sort, order: state.order });
  if (state.where) q.set("where", state.where);
  try {
    const data = await api(`/api/tracks?${q}`);
    const head = el("tr", {}, COLUMNS.map(([key, label, cls]) => {
      const active = state.sort === key;
      return el("th", { class: cls || null, scope: "col", "aria-sort": active ? (state.order === "asc" ? "ascending" : "descending") : null },
        el("button", { type: "button", onclick: () => go({ sort: key, order: active && state.order === "asc" ? "desc" : "asc", offset: 0 }) },
          label, active ? (state.order === "asc" ? " ▲" : " ▼") : ""));
    }), el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "play")));
    const rows = data.items.map((t) => el("tr", {},
      el("td", {}, el("a", { href: `#/track/${t.id}` }, trackName(t))),
      el("td", {}, t.artist || ""), el("td", { class: "hide-s" }, t.album || ""),
      el("td", { class: "num" }, clock(t.duration)),
      el("td", { class: "num hide-s" }, t.bpm ? Number(t.bpm).toFixed(0) : ""),
      el("td", { class: "hide-s" }, t.key || ""), el("td", { class: "num hide-s" }, t.id),
      el("td", {}, el("button", { type: "button", class: "small", "aria-pressed": "false", "aria-label": `Play ${trackName(t)}`,
        onclick: (ev) => playSegment(player, audioUrl(t.id), 0, null, { button: ev.currentTarget }) }, "▶"))));
    const last = Math.min(data.offset + data.items.length, data.total);
    const pager = el("div", { class: "pager" },
      el("button", { type: "button", disabled: state.offset === 0, onclick: () => go({ offset: Math.max(0, state.offset - state.limit) }) }, "← Previous"),
      el("span", { role: "status" }, data.total ? `${data.offset + 1}–${last} of ${data.total}` : "no tracks"),
      el("button", { type: "button", disabled: last >= data.total, onclick: () => go({ offset: state.offset + state.limit }) }, "Next →"),
      el("label", {}, "per page ", el("select", { onchange: (ev) => go({ limit: ev.target.value, offset: 0 }) },
        [25, 50, 100, 200].map((n) => el("option", { value: n, selected: n === state.limit }, n)))));
    body.replaceChildren(el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, rows))), pager);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error", role: "alert", text: e.message }));
  }
  try {
    const errs = await api("/api/errors");
    errorsBox.replaceChildren(el("h2", { id: "errors-h" }, `Files that failed to index (${errs.errors.length})`),
      errs.errors.length
        ? el("ul", { class: "errors" }, errs.errors.map((e) => el("li", {}, el("code", {}, e.path), " — ", el("span", { class: "error" }, e.error))))
        : el("p", { class: "hint", text: "none" }));
  } catch (e) { /* shown above */ }
}

// ---------------------------------------------------------------- router

async function loadStatus() {
  try {
    const s = await api("/api/stats");
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    $("#status").textContent = `${plural(s.tracks, "track")} · ${s.model}${s.errors ? ` · ${plural(s.errors, "error")}` : ""}`;
  } catch (e) {
    $("#status").textContent = e.message;
  }
}

function route() {
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const page = path.startsWith("/track/") ? "track" : path.startsWith("/library") ? "library"
    : path.startsWith("/radio") ? "radio" : path.startsWith("/duplicates") ? "duplicates"
    : path.startsWith("/classify") ? "classify" : path.startsWith("/map") ? "map" : "search";
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    if (a.dataset.nav === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  stopPlayback();
  document.title = "soundalike";
  if (page === "track") renderTrack(decodeURIComponent(path.slice("/track/".length)));
  else if (page === "library") renderLibrary(params);
  else if (page === "radio") renderRadio(params);  // radio.js
  else if (page === "duplicates") renderDuplicates(params);  // duplicates.js
  else if (page === "classify") renderClassify(params);  // classify.js
  else if (page === "map") renderMap(params);  // map.js
  else renderSearch();
  focusHeading();
}

function focusHeading() {
  // after a navigation the focus goes to the new page's heading (screen readers read it), never to <main>:
  // a focused container would be outlined as a whole
  const h = $("h1", view);
  if (!h) return;
  h.setAttribute("tabindex", "-1");
  h.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
(async () => {
  if (storedKey()) saveKey(storedKey()); // refresh the cookie
  await loadStatus();
  route();
})();
