// soundalike web app: the radio and sonic path page (#/radio). Loaded before app.js; it uses app.js's helpers
// (el, api, clock, trackName, playSegment, stopPlayback, audioUrl, focusHeading) only when a page is drawn.
//   #/radio?seed=1&seed=2&n=30&where=…&random_seed=0   a radio from seed tracks (built at once)
//   #/radio?a=1&b=2&steps=10&where=…                   a path from track A to track B (built at once)
//   #/radio?a=1                                         the page with A chosen, waiting for B
"use strict";

const radioQueue = { ids: [], index: -1, active: false, buttons: [] };
let radioListening = false;

function radioUrl(params, format) {
  const q = new URLSearchParams(params);
  if (format) q.set("format", format);
  return q;
}

// A search box over the library: type part of a title, an artist or a file name; pick a track.
function trackPicker(id, label, onpick) {
  const input = el("input", { type: "search", id, autocomplete: "off", placeholder: "title, artist or file name" });
  const list = el("ul", { class: "picks", "aria-label": `${label}: matching tracks` });
  let timer = null;
  let asked = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const words = input.value.trim();
      const mine = ++asked;
      if (!words) { list.replaceChildren(); return; }
      const q = quote(words);
      const where = `title contains ${q} or artist contains ${q} or path contains ${q}`;
      try {
        const data = await api(`/api/tracks?${new URLSearchParams({ where, limit: 8 })}`);
        if (mine !== asked) return;
        list.replaceChildren(...data.items.map((t) => el("li", {},
          el("button", { type: "button", class: "small pick", "data-track-id": t.id,
            onclick: () => { list.replaceChildren(); input.value = ""; onpick(t); } },
          `+ ${trackName(t)}`, t.artist ? el("span", { class: "hint" }, ` · ${t.artist}`) : null))));
        if (!data.items.length) list.replaceChildren(el("li", { class: "hint" }, "no track matches"));
      } catch (e) {
        list.replaceChildren(el("li", { class: "error" }, e.message));
      }
    }, 250);
  });
  return el("div", { class: "picker" }, el("label", { for: id }, label), input, list);
}

function chip(t, onremove) {
  return el("li", { class: "chip", "data-track-id": t.id },
    el("a", { href: `#/track/${t.id}` }, trackName(t)),
    onremove ? el("button", { type: "button", class: "small", "aria-label": `Remove ${trackName(t)}`, onclick: onremove }, "×") : null);
}

async function trackInfo(id) {
  try { return await api(`/api/tracks/${encodeURIComponent(id)}?tags=1`); } catch (e) { return { id, name: `#${id}` }; }
}

async function renderRadio(params) {
  if (!radioListening) {  // after app.js's own "ended" listener, which stops the playback first
    player.addEventListener("ended", () => { if (radioQueue.active) playQueued(radioQueue.index + 1); });
    radioListening = true;
  }
  Object.assign(radioQueue, { ids: [], index: -1, active: false, buttons: [] });
  const seedIds = params.getAll("seed").filter((s) => /^\d+$/.test(s));
  const state = {
    seeds: await Promise.all(seedIds.map(trackInfo)),
    a: params.get("a") ? await trackInfo(params.get("a")) : null,
    b: params.get("b") ? await trackInfo(params.get("b")) : null,
  };
  const nInput = el("input", { type: "number", id: "radio-n", min: "2", max: "500", value: params.get("n") || "30", inputmode: "numeric" });
  const whereInput = el("input", { type: "text", id: "radio-where", value: params.get("where") || "", autocomplete: "off",
    placeholder: "bpm between 90 and 120" });
  const stepsInput = el("input", { type: "number", id: "path-steps", min: "1", max: "100", value: params.get("steps") || "10", inputmode: "numeric" });
  const seedList = el("ul", { class: "chips", id: "radio-seeds", "aria-label": "seed tracks" });
  const aBox = el("ul", { class: "chips", id: "path-a", "aria-label": "from" });
  const bBox = el("ul", { class: "chips", id: "path-b", "aria-label": "to" });
  const errorBox = el("p", { class: "alert", role: "alert", id: "radio-error", hidden: true });
  const out = el("section", { id: "playlist", "aria-live": "polite" });

  const drawSeeds = () => seedList.replaceChildren(...(state.seeds.length ? state.seeds.map((t) => chip(t, () => {
    state.seeds = state.seeds.filter((s) => s !== t); drawSeeds();
  })) : [el("li", { class: "hint" }, "no seed yet: find a track below")]));
  const drawEnds = () => {
    aBox.replaceChildren(state.a ? chip(state.a, () => { state.a = null; drawEnds(); }) : el("li", { class: "hint" }, "choose below"));
    bBox.replaceChildren(state.b ? chip(state.b, () => { state.b = null; drawEnds(); }) : el("li", { class: "hint" }, "choose below"));
  };
  const fail = (text) => { errorBox.textContent = text; errorBox.hidden = !text; if (text) errorBox.scrollIntoView({ block: "nearest" }); };
  const common = () => {
    const q = {};
    const where = whereInput.value.trim();
    if (where) q.where = where;
    return q;
  };
  const startRadio = (randomSeed) => {
    if (!state.seeds.length) { fail("Choose at least one seed track."); return; }
    const q = new URLSearchParams(common());
    for (const t of state.seeds) q.append("seed", t.id);
    q.set("n", nInput.value || "30");
    if (randomSeed) q.set("random_seed", String(randomSeed));
    location.hash = `#/radio?${q}`;
  };
  const startPath = () => {
    if (!state.a || !state.b) { fail("Choose the track to start from and the track to end at."); return; }
    const q = new URLSearchParams(common());
    q.set("a", state.a.id); q.set("b", state.b.id); q.set("steps", stepsInput.value || "10");
    location.hash = `#/radio?${q}`;
  };

  view.replaceChildren(
    el("h1", {}, "Radio and sonic paths"),
    el("div", { class: "two" },
      el("section", { class: "panel", "aria-labelledby": "radio-h" },
        el("h2", { id: "radio-h" }, "Radio"),
        el("p", { class: "hint" }, "A varied playlist that sounds like the seeds: no copies, never two tracks of one album in a row."),
        seedList,
        trackPicker("radio-find", "Add a seed", (t) => { if (!state.seeds.some((s) => s.id === t.id)) state.seeds.push(t); drawSeeds(); }),
        el("div", { class: "row wrap" },
          el("label", {}, "tracks ", nInput),
          el("button", { type: "button", class: "primary", id: "radio-go", onclick: () => startRadio(0) }, "Start radio"),
          el("button", { type: "button", id: "radio-shuffle", onclick: () => startRadio(1 + Math.floor(Math.random() * 1e9)) }, "Shuffle"))),
      el("section", { class: "panel", "aria-labelledby": "path-h" },
        el("h2", { id: "path-h" }, "Sonic path"),
        el("p", { class: "hint" }, "A smooth walk from one track to another, each step nearer the end."),
        el("div", { class: "ends" }, el("span", {}, "From"), aBox, el("span", {}, "to"), bBox),
        trackPicker("path-find", "Choose a track", (t) => { if (!state.a) state.a = t; else state.b = t; drawEnds(); }),
        el("div", { class: "row wrap" },
          el("label", {}, "steps ", stepsInput),
          el("button", { type: "button", class: "primary", id: "path-go", onclick: startPath }, "Build path")))),
    el("div", { class: "row wrap" }, el("label", { for: "radio-where" }, "Only add tracks where"), whereInput),
    errorBox,
    out);
  drawSeeds();
  drawEnds();
  focusHeading();

  const q = new URLSearchParams();
  for (const k of ["where", "n", "steps", "random_seed"]) if (params.get(k)) q.set(k, params.get(k));
  let route = null;
  if (state.a && state.b) {
    q.set("a", state.a.id); q.set("b", state.b.id);
    route = "/api/path";
  } else if (state.seeds.length) {
    for (const t of state.seeds) q.append("seed", t.id);
    route = "/api/radio";
  }
  if (!route) return;
  out.replaceChildren(el("p", { class: "hint" }, "building the playlist…"));
  try {
    const data = await api(`${route}?${q}`);
    drawPlaylist(out, data, route, q);
  } catch (e) {
    out.replaceChildren();
    fail(e.message);
  }
}

function drawPlaylist(out, data, route, q) {
  const pct1 = (x) => `${Math.round(x * 100)} %`;
  const summary = [`${data.entries.length} tracks`];
  if (data.smoothness !== null) summary.push(`smoothness ${pct1(data.smoothness)} (neighbours' mean similarity)`);
  if (data.direct !== null) summary.push(`A to B directly ${pct1(data.direct)}`);
  if (data.copies_skipped) summary.push(`${data.copies_skipped} ${data.copies_skipped === 1 ? "copy" : "copies"} left out`);
  radioQueue.ids = data.entries.map((e) => e.track_id);
  radioQueue.buttons = [];
  const items = data.entries.map((e, i) => {
    const name = e.title || e.name;
    const button = el("button", { type: "button", class: "small play-entry", "aria-pressed": "false", "aria-label": `Play ${name}`,
      onclick: () => { radioQueue.active = false; playQueued(i, false); } }, "▶");
    radioQueue.buttons.push(button);
    const meta = [e.artist, e.album, clock(e.duration)].filter(Boolean).join(" · ");
    const extra = [];
    if (e.role !== "radio" && e.role !== "step") extra.push(e.role);
    if (e.similarity_prev !== null) extra.push(`${pct1(e.similarity_prev)} like the one before`);
    if (e.progress !== null && e.progress !== undefined) extra.push(`${pct1(e.progress)} of the way`);
    return el("li", { class: "entry", "data-track-id": e.track_id },
      el("span", { class: "rank" }, `${e.position}.`), button,
      el("div", { class: "entry-text" },
        el("a", { href: `#/track/${e.track_id}` }, name),
        el("span", { class: "meta" }, meta, extra.length ? ` · ${extra.join(" · ")}` : "")));
  });
  const downloads = ["m3u8", "xspf", "csv"].map((f) => el("a", {
    class: "download", href: `${route}?${radioUrl(q, f)}`, download: `${data.kind}.${f}` }, f.toUpperCase()));
  out.replaceChildren(...[
    el("h2", { id: "playlist-h" }, data.title),
    el("p", { class: "meta", id: "playlist-summary" }, summary.join(" · ")),
    data.note ? el("p", { class: "hint", id: "playlist-note" }, data.note) : null,
    el("div", { class: "row wrap" },
      el("button", { type: "button", class: "primary", id: "play-all", onclick: () => { radioQueue.active = true; playQueued(0); } }, "▶ Play all"),
      el("span", { class: "hint" }, "Download:"), downloads),
    el("ol", { class: "playlist", "aria-labelledby": "playlist-h" }, items)].filter(Boolean));
}

function playQueued(i, keepQueue = true) {
  if (i >= radioQueue.ids.length) { radioQueue.active = false; return; }
  radioQueue.index = i;
  for (const li of document.querySelectorAll(".playlist .entry")) li.classList.toggle("current", li.dataset.trackId === String(radioQueue.ids[i]));
  const active = radioQueue.active;
  playSegment(player, audioUrl(radioQueue.ids[i]), 0, null, { button: radioQueue.buttons[i] });
  radioQueue.active = keepQueue && active;
}
