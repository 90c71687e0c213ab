// soundalike web app: the waveform canvas (loaded before app.js; plain JavaScript, no build step).
"use strict";

// ---------------------------------------------------------------- waveform canvas

class Wave {
  // Peaks drawn on a canvas, with highlighted regions, an optional selection and a playhead.
  constructor(canvas, { selectable = false, onselect = null, onseek = null } = {}) {
    this.canvas = canvas;
    this.peaks = [];
    this.duration = 0;
    this.regions = [];   // {start, end, kind: "match" | "active"}
    this.selection = null;
    this.playhead = null;
    this.onselect = onselect;
    this.onseek = onseek;
    new ResizeObserver(() => this.draw()).observe(canvas);
    if (selectable) this._selectable();
    else if (onseek) canvas.addEventListener("click", (ev) => onseek(this._time(ev)));
  }

  set(peaks, duration) {
    this.peaks = peaks || []; this.duration = duration || 0;
    this.canvas.dataset.ready = this.peaks.length ? "1" : "";
    this.draw();
  }
  setRegions(regions) {
    this.regions = regions || [];
    // what is highlighted, in seconds, readable without the pixels (the browser tests check where the matches are)
    this.canvas.dataset.regions = JSON.stringify(this.regions.map((r) => [r.start, r.end, r.kind]));
    this.draw();
  }
  setPlayhead(t) { this.playhead = t; this.draw(); }

  _time(ev) {
    const r = this.canvas.getBoundingClientRect();
    const x = Math.min(Math.max(ev.clientX - r.left, 0), r.width);
    return r.width ? (x / r.width) * this.duration : 0;
  }

  _selectable() {
    const c = this.canvas;
    let anchor = null;
    c.addEventListener("pointerdown", (ev) => {
      if (!this.duration) return;
      c.setPointerCapture(ev.pointerId);
      anchor = this._time(ev);
      this.selection = [anchor, anchor];
      this.draw();
    });
    c.addEventListener("pointermove", (ev) => {
      if (anchor === null) return;
      const t = this._time(ev);
      this.selection = [Math.min(anchor, t), Math.max(anchor, t)];
      this.draw();
    });
    const finish = () => {
      if (anchor === null) return;
      anchor = null;
      const [a, b] = this.selection;
      if (b - a < 0.25) this.selection = null; // a click, not a drag: the whole file
      this.draw();
      if (this.onselect) this.onselect(this.selection);
    };
    c.addEventListener("pointerup", finish);
    c.addEventListener("pointercancel", finish);
    c.addEventListener("keydown", (ev) => {
      if (!this.duration) return;
      const step = ev.altKey ? 0.1 : 1;
      let [a, b] = this.selection || [0, Math.min(this.duration, 10)];
      const len = b - a;
      if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
        const d = ev.key === "ArrowRight" ? step : -step;
        if (ev.shiftKey) b = Math.min(Math.max(b + d, a + 0.5), this.duration);
        else { a = Math.min(Math.max(a + d, 0), this.duration - len); b = a + len; }
      } else if (ev.key === "Home") { a = 0; b = len; }
      else if (ev.key === "End") { b = this.duration; a = b - len; }
      else if (ev.key === "Escape") { this.selection = null; this.draw(); if (this.onselect) this.onselect(null); return; }
      else return;
      ev.preventDefault();
      this.selection = [Math.max(0, a), b];
      this.draw();
      if (this.onselect) this.onselect(this.selection);
    });
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const x = (t) => (this.duration ? (t / this.duration) * w : 0);
    for (const r of this.regions) {
      g.fillStyle = color(r.kind === "active" ? "--active" : "--match");
      g.fillRect(x(r.start), 0, Math.max(2, x(r.end) - x(r.start)), h);
    }
    if (this.selection) {
      g.fillStyle = color("--sel");
      g.fillRect(x(this.selection[0]), 0, x(this.selection[1]) - x(this.selection[0]), h);
    }
    const n = this.peaks.length;
    if (n) {
      const mid = h / 2;
      const bar = w / n;
      for (let i = 0; i < n; i++) {
        const t = ((i + 0.5) / n) * this.duration;
        const inside = this.selection && t >= this.selection[0] && t <= this.selection[1];
        g.fillStyle = color(inside ? "--wave-in" : "--wave");
        const amp = Math.max(1, this.peaks[i] * (mid - 2));
        g.fillRect(i * bar, mid - amp, Math.max(1, bar - (bar > 3 ? 1 : 0)), amp * 2);
      }
    }
    if (this.playhead !== null && this.duration) {
      g.fillStyle = "#d00";
      g.fillRect(x(this.playhead) - 1, 0, 2 * dpr, h);
    }
  }
}
