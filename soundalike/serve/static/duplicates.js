// soundalike web app: the duplicates page (#/duplicates), over GET /api/duplicates.
// Each group lists its copies, the one to keep and why; each pair plays both files side by side, lined up
// at the offset the alignment found (and the tempo change, if any), with a button that switches from one
// to the other at the same moment of the music.
"use strict";

let dupPlayers = [];  // this page's <audio> elements, paused when the page is left

function stopDuplicatePlayers() {
  for (const a of dupPlayers) a.pause();
}
window.addEventListener("hashchange", stopDuplicatePlayers);

function dupName(c) { return c.title || (c.path || "").split("/").pop() || `#${c.track_id}`; }

function whenReady(audio) {  // resolves once the element knows its duration, so that currentTime can be set
  if (audio.readyState >= 1) return Promise.resolve();
  return new Promise((resolve) => {
    audio.addEventListener("loadedmetadata", () => resolve(), { once: true });
    audio.preload = "metadata";
    audio.load();
  });
}

function pairBlock(pair, copies) {
  const byId = Object.fromEntries(copies.map((c) => [c.track_id, c]));
  const a = byId[pair.a], b = byId[pair.b];
  const rel = pair.relation;
  const rate = 1 + (rel.tempo_pct || 0) / 100;  // b's seconds x rate = a's seconds after the offset
  const toA = (tb) => rel.offset + tb * rate;
  const toB = (ta) => Math.max(0, (ta - rel.offset) / rate);
  const audioA = el("audio", { controls: true, preload: "none", src: audioUrl(pair.a), "data-track-id": pair.a,
                                "aria-label": `Play ${dupName(a)}` });
  const audioB = el("audio", { controls: true, preload: "none", src: audioUrl(pair.b), "data-track-id": pair.b,
                                "aria-label": `Play ${dupName(b)}` });
  dupPlayers.push(audioA, audioB);
  const side = (label, c, audio) => el("div", { class: "dup-side" },
    el("div", { class: "dup-file" }, el("span", { class: "badge" }, label), " ",
       el("a", { href: `#/track/${c.track_id}` }, dupName(c))),
    audio);
  const playAligned = async () => {
    stopPlayback();
    stopDuplicatePlayers();
    await Promise.all([whenReady(audioA), whenReady(audioB)]);
    audioB.currentTime = 0;
    audioA.currentTime = Math.max(0, toA(0));
    await audioA.play().catch(() => {});
  };
  const switchSides = async () => {
    const fromA = !audioA.paused || audioB.paused;
    const [src, dst] = fromA ? [audioA, audioB] : [audioB, audioA];
    await whenReady(dst);
    dst.currentTime = fromA ? toB(src.currentTime) : Math.max(0, toA(src.currentTime));
    src.pause();
    await dst.play().catch(() => {});
  };
  return el("div", { class: "dup-pair", "data-pair": `${pair.a}-${pair.b}`, "data-offset": rel.offset },
    el("p", { class: "dup-rel" }, el("strong", {}, `B: ${rel.text}`),
       el("span", { class: "hint" }, ` · B starts at ${clock(rel.offset)} of A · score ${pct(pair.score)}`)),
    el("div", { class: "dup-sides" }, side("A", a, audioA), side("B", b, audioB)),
    el("div", { class: "row wrap" },
      el("button", { type: "button", class: "dup-play", onclick: playAligned }, "▶ Play A from where B starts"),
      el("button", { type: "button", class: "dup-switch", onclick: switchSides }, "⇄ Switch to the other")));
}

function groupCard(g, n) {
  const keep = g.copies[0];
  const rows = g.copies.map((c) => el("tr", { class: c.track_id === g.keep ? "keep" : null },
    el("td", {}, el("a", { href: `#/track/${c.track_id}` }, dupName(c)),
       c.track_id === g.keep ? el("span", { class: "badge keep-badge" }, "keep") : null),
    el("td", {}, c.codec || "?"),
    el("td", { class: "num" }, c.bitrate_kbps === null ? "–" : Math.round(c.bitrate_kbps)),
    el("td", { class: "num" }, clock(c.duration))));
  return el("section", { class: "card dup-group", "data-keep": g.keep, "aria-labelledby": `dup-h-${n}` },
    el("h2", { id: `dup-h-${n}` }, `Group ${n}: keep `, dupName(keep)),
    el("p", { class: "hint dup-reason" }, `Why: ${g.reason}`),
    el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "File"), el("th", {}, "Codec"), el("th", { class: "num" }, "kbit/s"),
                         el("th", { class: "num" }, "Length"))),
      el("tbody", {}, rows))),
    g.pairs.map((p) => pairBlock(p, g.copies)));
}

async function renderDuplicates(params) {
  stopDuplicatePlayers();
  dupPlayers = [];
  document.title = "Duplicates · soundalike";
  const min = params.get("min_score") || "";
  const status = el("p", { class: "hint", role: "status", "aria-live": "polite" }, "Looking for copies…");
  const input = el("input", { id: "dup-min", type: "number", min: "0.05", max: "1", step: "0.01", value: min,
                              inputmode: "decimal", placeholder: "default" });
  const form = el("form", { class: "row wrap", onsubmit: (e) => {
    e.preventDefault();
    location.hash = input.value ? `#/duplicates?min_score=${encodeURIComponent(input.value)}` : "#/duplicates";
  } }, el("label", { for: "dup-min" }, "Minimum score"), input, el("button", { type: "submit" }, "Apply"));
  const list = el("div", { id: "dup-groups" });
  const error = el("p", { class: "alert", role: "alert", hidden: true });
  view.replaceChildren(el("section", { class: "duplicates", "aria-labelledby": "dup-h" },
    el("h1", { id: "dup-h" }, "Duplicates"),
    el("p", { class: "hint" }, "Copies of one recording: re-encodes, trims, level changes, fades, speed changes. ",
       "Each group says which file to keep: lossless over lossy, then the higher bitrate, then the longer."),
    form, status, error, list));
  try {
    const data = await api(`/api/duplicates${min ? `?min_score=${encodeURIComponent(min)}` : ""}`);
    const plural = (k, w) => `${k} ${w}${k === 1 ? "" : "s"}`;
    status.textContent = data.count
      ? `${plural(data.count, "group")}, ${data.copies} ${data.copies === 1 ? "copy" : "copies"} that could go`
      : "No duplicates found.";
    list.replaceChildren(...data.groups.map((g, i) => groupCard(g, i + 1)));
  } catch (e) {
    status.textContent = "";
    error.hidden = false;
    error.textContent = e.message;
  }
}
