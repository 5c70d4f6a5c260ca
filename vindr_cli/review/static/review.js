// vindr review: the page. No framework, no build step, nothing from the network but this server.
"use strict";
(function () {
  const TOKEN = new URLSearchParams(location.search).get("t") || "";
  const NAMES = {"redacted": "Redacted", "residual-text": "Residual text", "qc": "QC flags",
                 "duplicates": "Near-duplicates", "spot-check": "Spot check"};
  const LABEL = {"accept": "accepted", "exclude": "excluded", "more-redaction": "more redaction"};
  const ui = {queue: null, index: 0, view: "grid", window: "header", zoom: 1, frame: 0, drawing: false, drag: null};
  let state = null, seen = "";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  async function api(path, body) {
    const opts = {headers: {"X-Vindr-Token": TOKEN}, credentials: "same-origin", cache: "no-store"};
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }
  const imgUrl = (id, size, win, frame) =>
    `/api/image/${id}.png?size=${size}&window=${win || "header"}&frame=${frame || 0}&t=${encodeURIComponent(TOKEN)}`;
  const ids = () => (state && ui.queue) ? state.queues[ui.queue] : [];
  const currentId = () => ids()[ui.index];
  // the decision shown for an image in the open queue: its own there, else an exclusion made elsewhere
  function shown(id) {
    const per = state.decisions[id] || {};
    if (per[ui.queue]) return per[ui.queue];
    if (state.verdicts[id] === "exclude") return {decision: "exclude", box: null, elsewhere: true};
    return null;
  }
  function status(msg) { $("status").textContent = msg; }

  function setState(s) {
    state = s;
    const key = JSON.stringify([s.decisions, s.verdicts, s.progress]);
    if (!ui.queue) ui.queue = Object.keys(s.queues).find((q) => s.queues[q].length) || Object.keys(s.queues)[0];
    if (key !== seen) { seen = key; render(); }
  }
  async function refresh() {
    try { setState(await api("/api/state")); } catch (e) { status("cannot reach vindr review: " + e.message); }
  }

  function boxesSvg(svg, img, decision) {
    svg.setAttribute("viewBox", `0 0 ${img.cols} ${img.rows}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    const add = (b, cls) => {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", b[1]); r.setAttribute("y", b[2]);
      r.setAttribute("width", b[3] - b[1]); r.setAttribute("height", b[4] - b[2]);
      r.setAttribute("class", cls);
      svg.appendChild(r);
    };
    (img.redactions || []).forEach((b) => add(b, "mask"));
    (img.findings || []).forEach((b) => add(b, "finding"));
    if (decision && decision.box) add(decision.box, "drawn");
  }

  function renderTabs() {
    const nav = $("tabs");
    nav.replaceChildren();
    for (const q of Object.keys(state.queues)) {
      const p = state.progress[q];
      const b = document.createElement("button");
      b.dataset.queue = q;
      b.className = q === ui.queue ? "active" : "";
      b.innerHTML = "";
      b.append(NAMES[q] || q);
      const c = document.createElement("span");
      c.className = "count";
      c.textContent = `${p.decided}/${p.total}`;
      b.append(c);
      b.onclick = () => { ui.queue = q; ui.index = 0; render(); };
      nav.appendChild(b);
    }
    $("who").textContent = state.reviewer ? "reviewer: " + state.reviewer : "";
  }

  function tile(id, i) {
    const img = state.images[id], d = shown(id);
    const t = document.createElement("div");
    t.className = "tile" + (i === ui.index ? " current" : "");
    t.dataset.id = id;
    const frame = document.createElement("div");
    frame.className = "frame";
    const pic = document.createElement("div");
    pic.style.position = "relative";
    pic.style.aspectRatio = `${img.cols} / ${img.rows}`;
    if (img.cols >= img.rows) pic.style.width = "100%"; else pic.style.height = "100%";
    const im = document.createElement("img");
    im.loading = "lazy";
    im.alt = "";
    im.style.width = "100%"; im.style.height = "100%";
    im.src = imgUrl(id, "thumb");
    const svg = document.createElementNS(SVG, "svg");
    svg.style.inset = "0"; svg.style.width = "100%"; svg.style.height = "100%";
    boxesSvg(svg, img, d);
    pic.append(im, svg);
    frame.append(pic);
    const meta = document.createElement("div");
    meta.className = "meta";
    const left = document.createElement("span");
    left.textContent = id.slice(0, 8);
    const right = document.createElement("span");
    const bits = [];
    if (img.redactions.length) bits.push(`${img.redactions.length} masked`);
    if (img.residual) bits.push(`${img.residual} text finding(s)`);
    if (img.qc_flags.length) bits.push(img.qc_flags.join(", "));
    if (img.frames > 1) bits.push(`${img.frames} frames`);
    right.textContent = bits.join(" · ");
    meta.append(left, right);
    t.append(frame, meta);
    if (d) {
      const b = document.createElement("span");
      b.className = "badge " + d.decision;
      b.textContent = LABEL[d.decision] + (d.elsewhere ? " (other queue)" : "");
      t.append(b);
    }
    t.onclick = () => { ui.index = i; openLarge(); };
    return t;
  }

  function renderGrid() {
    const grid = $("grid");
    grid.replaceChildren();
    const list = ids();
    if (!list.length) {
      const e = document.createElement("div");
      e.className = "empty";
      e.textContent = "Nothing in this queue.";
      grid.append(e);
      return;
    }
    let group = null;
    list.forEach((id, i) => {
      const g = state.images[id].dup_group;
      if (ui.queue === "duplicates" && g !== group) {
        group = g;
        const h = document.createElement("div");
        h.className = "group";
        h.textContent = "group " + g;
        grid.append(h);
      }
      grid.append(tile(id, i));
    });
    const cur = grid.querySelector(".tile.current");
    if (cur && ui.view === "grid") cur.scrollIntoView({block: "nearest"});
  }

  function renderLarge() {
    const id = currentId();
    if (!id) { closeLarge(); return; }
    const img = state.images[id], d = shown(id);
    $("large").hidden = false;
    $("large").classList.toggle("drawing", ui.drawing);
    ui.frame = Math.max(0, Math.min(ui.frame, img.frames - 1));
    $("large-title").textContent = `${NAMES[ui.queue]} ${ui.index + 1}/${ids().length} · ${id.slice(0, 8)} · ${img.cols}×${img.rows}`
      + (img.frames > 1 ? ` · frame ${ui.frame + 1}/${img.frames} ([ ])` : "");
    $("large-decision").textContent = d ? "decision: " + LABEL[d.decision] : "undecided";
    const src = imgUrl(id, "large", ui.window, ui.frame);
    if ($("large-img").getAttribute("src") !== src) $("large-img").setAttribute("src", src);
    $("zoomer").style.transform = `scale(${ui.zoom})`;
    boxesSvg($("overlay"), img, d);
    document.querySelectorAll("#toolbar [data-window]").forEach((b) => b.classList.toggle("active", b.dataset.window === ui.window));
    $("draw").classList.toggle("active", ui.drawing);
  }

  function render() {
    if (!state) return;
    ui.index = Math.max(0, Math.min(ui.index, ids().length - 1));
    renderTabs();
    renderGrid();
    if (ui.view === "large") renderLarge(); else $("large").hidden = true;
  }
  function openLarge(drawing) { ui.view = "large"; ui.drawing = !!drawing; ui.frame = 0; render(); }
  function closeLarge() { ui.view = "grid"; ui.drawing = false; ui.zoom = 1; $("large").hidden = true; render(); }

  async function decide(decision, box) {
    const id = currentId();
    if (!id) return;
    try {
      const r = await api("/api/decide", {image_id: id, queue: ui.queue, decision: decision, box: box || null});
      status(`saved: ${id.slice(0, 8)} ${LABEL[decision]}`);
      ui.drawing = false;
      if (ui.index < ids().length - 1) { ui.index += 1; ui.frame = 0; }
      seen = ""; setState(r.state);
    } catch (e) { status("not saved: " + e.message); }
  }
  async function undo() {
    try {
      const r = await api("/api/undo", {});
      status(r.row ? `undone: ${r.row.image_id.slice(0, 8)}` : "nothing to undo");
      if (r.row) {
        if (r.row.queue !== ui.queue && state.queues[r.row.queue]) ui.queue = r.row.queue;
        const i = state.queues[ui.queue].indexOf(r.row.image_id);
        if (i >= 0) ui.index = i;
      }
      seen = ""; setState(r.state);
    } catch (e) { status("undo failed: " + e.message); }
  }
  function move(step) { ui.index = Math.max(0, Math.min(ids().length - 1, ui.index + step)); ui.frame = 0; render(); }
  function rowLength() {
    const tiles = [...document.querySelectorAll("#grid .tile")];
    if (!tiles.length) return 1;
    const top = tiles[0].offsetTop;
    return Math.max(1, tiles.filter((t) => t.offsetTop === top).length);
  }

  // drawing a box on the large image, in DICOM pixels
  function toPixel(ev) {
    const r = $("overlay").getBoundingClientRect(), img = state.images[currentId()];
    const x = (ev.clientX - r.left) / r.width * img.cols, y = (ev.clientY - r.top) / r.height * img.rows;
    return [Math.max(0, Math.min(img.cols, x)), Math.max(0, Math.min(img.rows, y))];
  }
  $("overlay").addEventListener("mousedown", (ev) => {
    if (!ui.drawing) return;
    ev.preventDefault();
    ui.drag = toPixel(ev);
  });
  window.addEventListener("mousemove", (ev) => {
    if (!ui.drag) return;
    const [x, y] = toPixel(ev), img = state.images[currentId()];
    const b = [ui.frame, Math.min(ui.drag[0], x), Math.min(ui.drag[1], y), Math.max(ui.drag[0], x), Math.max(ui.drag[1], y)];
    boxesSvg($("overlay"), img, {box: b});
  });
  window.addEventListener("mouseup", (ev) => {
    if (!ui.drag) return;
    const [x, y] = toPixel(ev), a = ui.drag;
    ui.drag = null;
    const box = [ui.frame, Math.floor(Math.min(a[0], x)), Math.floor(Math.min(a[1], y)), Math.ceil(Math.max(a[0], x)), Math.ceil(Math.max(a[1], y))];
    if (box[3] - box[1] < 1 || box[4] - box[2] < 1) { status("draw a box by dragging over the text"); return; }
    decide("more-redaction", box);
  });

  document.querySelectorAll("#toolbar [data-window]").forEach((b) => b.onclick = () => { ui.window = b.dataset.window; renderLarge(); });
  $("zoom-in").onclick = () => { ui.zoom = Math.min(8, ui.zoom * 1.25); renderLarge(); };
  $("zoom-out").onclick = () => { ui.zoom = Math.max(0.25, ui.zoom / 1.25); renderLarge(); };
  $("draw").onclick = () => { ui.drawing = !ui.drawing; renderLarge(); };
  $("close").onclick = closeLarge;

  document.addEventListener("keydown", (ev) => {
    if (!state || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "a" || k === "A") decide("accept");
    else if (k === "x" || k === "X") decide("exclude");
    else if (k === "d" || k === "D") { if (ui.view === "large") { ui.drawing = !ui.drawing; renderLarge(); } else openLarge(true); }
    else if (k === "u" || k === "U") undo();
    else if (k === "ArrowRight") move(1);
    else if (k === "ArrowLeft") move(-1);
    else if (k === "ArrowDown") move(ui.view === "grid" ? rowLength() : 1);
    else if (k === "ArrowUp") move(ui.view === "grid" ? -rowLength() : -1);
    else if (k === "Enter") openLarge();
    else if (k === "Escape") closeLarge();
    else if (ui.view === "large" && (k === "1" || k === "2" || k === "3")) { ui.window = ["header", "wider", "narrower"][+k - 1]; renderLarge(); }
    else if (ui.view === "large" && (k === "+" || k === "=")) { ui.zoom = Math.min(8, ui.zoom * 1.25); renderLarge(); }
    else if (ui.view === "large" && k === "-") { ui.zoom = Math.max(0.25, ui.zoom / 1.25); renderLarge(); }
    else if (ui.view === "large" && (k === "[" || k === "]")) { ui.frame += k === "]" ? 1 : -1; renderLarge(); }
    else if (k === "Tab") {
      const qs = Object.keys(state.queues);
      ui.queue = qs[(qs.indexOf(ui.queue) + (ev.shiftKey ? qs.length - 1 : 1)) % qs.length];
      ui.index = 0;
      render();
    } else return;
    ev.preventDefault();
  });

  refresh();
  setInterval(refresh, 2000);     // a second tab's decisions show up here
})();
