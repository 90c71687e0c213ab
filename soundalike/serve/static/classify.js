// soundalike web app: the classify page (#/classify), over /api/classify/*. Loaded before app.js; it uses
// app.js's helpers (el, api, playSegment, audioUrl, focusHeading, player) only when a page is drawn.
//   #/classify                 choose a label field; predict its missing values (kNN, or classes by words)
//   #/classify?field=mood      the field's least certain predictions: play, accept, or correct (a user label)
"use strict";

const CLS_PAGE = 20;

function clsPct(x) { return `${Math.round(x * 100)} %`; }

async function renderClassify(params) {
  const field = params.get("field") || "";
  const errorBox = el("p", { class: "alert", role: "alert", id: "cls-error", hidden: true });
  const fail = (text) => { errorBox.textContent = text; errorBox.hidden = !text; if (text) errorBox.scrollIntoView({ block: "nearest" }); };
  const select = el("select", { id: "cls-field" }, el("option", { value: "" }, "choose a field…"));
  const kInput = el("input", { type: "number", id: "cls-k", min: "1", max: "200", placeholder: "auto", inputmode: "numeric" });
  const summary = el("p", { class: "meta", id: "cls-summary", "aria-live": "polite" });
  const review = el("section", { id: "cls-review", "aria-live": "polite" });
  const wordsField = el("input", { type: "text", id: "cls-words-field", autocomplete: "off", placeholder: "energy" });
  const words = el("textarea", { id: "cls-words", rows: "3", placeholder: "calm=calm ambient piano\nenergetic=fast loud drums" });

  const run = async (body) => {
    fail("");
    summary.textContent = "predicting…";
    try {
      const r = await api("/api/classify/run", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ limit: 0 }, body)) });
      const src = r.method === "knn" ? `from ${r.examples} of your labels in ${Object.keys(r.classes).length} categories (k=${r.k})`
        : "from the words";
      summary.textContent = `Predicted ${r.field} for ${r.count} ${r.count === 1 ? "track" : "tracks"} ${src}.`;
      if (location.hash === `#/classify?field=${encodeURIComponent(r.field)}`) drawReview(review, r.field, 0, fail);
      else location.hash = `#/classify?field=${encodeURIComponent(r.field)}`;
    } catch (e) {
      summary.textContent = "";
      fail(e.message);
    }
  };
  const runKnn = () => {
    if (!select.value) { fail("Choose a label field first."); return; }
    const body = { field: select.value };
    if (kInput.value) body.k = Number(kInput.value);
    run(body);
  };
  const runWords = () => {
    const name = wordsField.value.trim();
    const classes = {};
    for (const line of words.value.split("\n")) {
      if (!line.trim()) continue;
      const i = line.indexOf("=");
      if (i < 1) { fail(`"${line.trim()}": write each class as NAME=WORDS`); return; }
      classes[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (!name) { fail("Name the field the classes fill."); return; }
    if (Object.keys(classes).length < 2) { fail("Give at least two classes, one per line: NAME=WORDS."); return; }
    run({ field: name, classes });
  };

  view.replaceChildren(
    el("h1", {}, "Classify"),
    el("div", { class: "two" },
      el("section", { class: "panel", "aria-labelledby": "cls-h" },
        el("h2", { id: "cls-h" }, "From your labels"),
        el("p", { class: "hint" }, "Tracks without a value get the one most voted by the tracks that sound most like them. Your own values are never replaced."),
        el("div", { class: "row wrap" }, el("label", { for: "cls-field" }, "Field"), select),
        el("div", { class: "row wrap" },
          el("label", { for: "cls-k" }, "neighbours"), kInput,
          el("button", { type: "button", class: "primary", id: "cls-run", onclick: runKnn }, "Predict missing values"))),
      el("section", { class: "panel", "aria-labelledby": "cls-words-h" },
        el("h2", { id: "cls-words-h" }, "From words"),
        el("p", { class: "hint" }, "Define each class by words the tag vocabulary knows, one per line."),
        el("div", { class: "row wrap" }, el("label", { for: "cls-words-field" }, "Field"), wordsField),
        el("label", { for: "cls-words" }, "Classes"), words,
        el("div", { class: "row wrap" },
          el("button", { type: "button", class: "primary", id: "cls-words-run", onclick: runWords }, "Classify by words")))),
    errorBox, summary, review);
  focusHeading();

  try {
    const data = await api("/api/classify/fields");
    for (const f of data.fields) {
      select.append(el("option", { value: f.field }, `${f.field} (${f.user} yours${f.predicted ? `, ${f.predicted} predicted` : ""})`));
    }
    if (field && !data.fields.some((f) => f.field === field)) select.append(el("option", { value: field }, field));
    select.value = field;
  } catch (e) { fail(e.message); }
  select.addEventListener("change", () => { if (select.value) location.hash = `#/classify?field=${encodeURIComponent(select.value)}`; });
  if (field) drawReview(review, field, 0, fail);
}

async function drawReview(out, field, offset, fail) {
  let data;
  try {
    data = await api(`/api/classify/review?${new URLSearchParams({ field, limit: CLS_PAGE, offset })}`);
  } catch (e) { out.replaceChildren(); fail(e.message); return; }
  const listId = "cls-values";
  const datalist = el("datalist", { id: listId }, data.values.map((v) => el("option", { value: String(v.value) })));
  if (!data.count) {
    out.replaceChildren(el("h2", { id: "cls-review-h" }, `${data.field}: nothing to review`),
      el("p", { class: "hint", id: "cls-empty" }, "No predictions yet: predict the missing values above."));
    return;
  }
  const buttons = [];
  const items = data.predictions.map((p, i) => entry(p, data.field, listId, buttons, fail, offset + i + 1));
  const more = offset + data.predictions.length < data.count
    ? el("button", { type: "button", id: "cls-more", onclick: () => drawReview(out, field, offset + CLS_PAGE, fail) }, "Next predictions")
    : null;
  const back = offset > 0
    ? el("button", { type: "button", id: "cls-prev", onclick: () => drawReview(out, field, Math.max(0, offset - CLS_PAGE), fail) }, "Previous")
    : null;
  out.replaceChildren(...[
    el("h2", { id: "cls-review-h" }, `${data.field}: the least certain predictions`),
    el("p", { class: "meta", id: "cls-count" },
      `${offset + 1}–${offset + data.predictions.length} of ${data.count} predictions, least certain first. ` +
      "Accept one, or correct it: it becomes your label, and the next prediction learns from it."),
    datalist,
    el("ol", { class: "playlist", "aria-labelledby": "cls-review-h", id: "cls-list" }, items),
    el("div", { class: "pager" }, back, more)].filter(Boolean));
}

function entry(p, field, listId, buttons, fail, position) {
  const name = p.title || p.name;
  const play = el("button", { type: "button", class: "small play-entry", "aria-pressed": "false", "aria-label": `Play ${name}`,
    onclick: () => playSegment(player, audioUrl(p.track_id), 0, null, { button: play }) }, "▶");
  buttons.push(play);
  const inputId = `cls-fix-${p.track_id}`;
  const fix = el("input", { type: "text", id: inputId, list: listId, autocomplete: "off", placeholder: "correct value",
    "aria-label": `Correct ${field} of ${name}` });
  const status = el("span", { class: "meta cls-status" },
    `predicted `, el("b", {}, String(p.value)), ` · confidence ${clsPct(p.confidence)} · margin ${clsPct(p.margin)}`);
  const li = el("li", { class: "entry cls-entry", "data-track-id": p.track_id });
  const save = async (value) => {
    fail("");
    try {
      const body = { field, track_id: p.track_id };
      if (value !== undefined) body.value = value;
      const r = await api("/api/classify/accept", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      li.classList.add("done");
      status.replaceChildren(`your label: `, el("b", {}, String(r.value)), r.value === p.value ? " (accepted)" : " (corrected)");
      for (const b of li.querySelectorAll(".cls-actions button, .cls-actions input")) b.disabled = true;
    } catch (e) { fail(e.message); }
  };
  const accept = el("button", { type: "button", class: "small cls-accept", onclick: () => save(undefined) }, "Accept");
  const set = el("button", { type: "button", class: "small cls-set", onclick: () => {
    if (!fix.value.trim()) { fail("Type the right value first."); fix.focus(); return; }
    save(fix.value.trim());
  } }, "Set");
  fix.addEventListener("keydown", (ev) => { if (ev.key === "Enter") set.click(); });
  li.append(
    el("span", { class: "rank" }, `${position}.`), play,
    el("div", { class: "entry-text" },
      el("a", { href: `#/track/${p.track_id}` }, name),
      p.artist ? el("span", { class: "meta" }, p.artist) : null, status),
    el("div", { class: "cls-actions" }, accept, fix, set));
  return li;
}
