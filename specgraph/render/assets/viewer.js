/* specgraph viewer: the page — pan and zoom, open and close, select, search, export, live. */
"use strict";
(function () {
  var SG = window.SG;
  var $ = function (sel) { return document.querySelector(sel); };
  var svg = $("#sg-svg"), viewport = $("#sg-viewport"), panel = $("#sg-panel"), canvas = $("#sg-canvas");
  var search = $("#sg-search"), counter = $("#sg-count"), minimap = $("#sg-minimap"), banner = $("#sg-banner");
  var V = window.specgraphViewer = {timings: {}};
  var G, layout, labels, open, lay, selected = null, hits = [], hitAt = -1, view = {x: 0, y: 0, s: 1};
  var elements = new Map();  // key -> the drawn <g>

  function timed(name, fn) {
    var t = performance.now(), r = fn();
    V.timings[name] = performance.now() - t;
    return r;
  }

  // ---- model ----------------------------------------------------------------------------------
  function load(model, keep) {
    if (model.format !== 1) throw new Error("this viewer reads model format 1, not " + model.format);
    var before = keep && open ? new Set(open) : null, sel = keep ? selected : null;
    G = SG.graph = SG.buildGraph(model);
    layout = new SG.Layout(G); labels = new SG.Labels();
    document.title = model.name + " — specgraph";
    $("#sg-name").textContent = model.name;
    if (before) {
      open = new Set();
      before.forEach(function (k) { if (G.byKey.has(k)) open.add(k); });
      selected = sel && G.byKey.has(sel) ? sel : null;
    } else {
      open = SG.openAtDepth(G, autoDepth());
    }
    G.nodes.forEach(function (e) {  // a failing node is always drawn: the blocks around it open
      if (e.kind === "error") e.anc.slice(1).forEach(function (g) { open.add(g.key); });
    });
    banner.hidden = !model.stale && model.ok !== false;
    var n = model.errors.length + " error" + (model.errors.length === 1 ? "" : "s");
    banner.textContent = model.stale ? (model.nodes.length ? "showing the last good diagram: " : "") +
      "the spec does not load (" + n + ", listed on the right)"
      : model.ok === false ? "drawn up to the failure: " + model.errors.filter(isError).length + " error(s), in red" : "";
  }
  function isError(e) { return e.severity === "error"; }

  // The deepest depth whose layout fits the screen at a readable scale (the first view).
  function autoDepth() {
    var w = canvas.clientWidth || 1000, h = canvas.clientHeight || 700, best = 0;
    for (var d = 0; d <= G.maxLevel; d++) {
      var l = layout.run(SG.openAtDepth(G, d), labels);
      if (Math.min(w / l.width, h / l.height) >= 0.55 || d === 0) best = d; else break;
    }
    return best;
  }

  // ---- drawing --------------------------------------------------------------------------------
  // A large view puts in the page only what is on the screen or a screen away from it, and
  // draws boxes without text when zoomed too far out to read them: the browser's work then
  // follows what is shown, not the size of the graph.  Panning further draws again.
  var CULL = 600, FAR = 0.45, painted = null;
  function draw() { relayout(); paint(); }
  function relayout() {
    lay = layout.run(open, labels);
    lay.recurrent = SG.recurrentPaths(G, lay);
    lay.count = 0;
    lay.boxes.forEach(function (b, e) { if (!(e.isGroup && open.has(e.key))) lay.count++; });
    legend();
  }
  // The legend: the categories of the ops drawn now, and the marks in use — nothing else.
  function legend() {
    var cats = [], marks = [];
    lay.boxes.forEach(function (b, e) {
      if (!e.isGroup && e.kind === "op" && cats.indexOf(e.data.cat) < 0) cats.push(e.data.cat);
    });
    cats.sort();
    function has(test) { return lay.edges.some(test); }
    if (has(function (ve) { return ve.role === "skip" || ve.role === "bridge"; })) marks.push(["skip", "- - skip edge"]);
    if (has(function (ve) { return ve.sizeOnly; })) marks.push(["size", "··· size only"]);
    if (lay.recurrent.length) marks.push(["skip", "- - state, to the next step"]);
    if (Array.from(lay.boxes.keys()).some(function (e) { return e.isGroup && !open.has(e.key); })) {
      marks.push(["block", "▣ closed block"]);
    }
    if (G.nodes.some(function (e) { return e.kind === "error"; })) marks.push(["error", "■ error"]);
    $("#sg-legend").innerHTML = cats.map(function (c) {
      return '<span class="sg-sw ' + SG.categoryClass(c) + '" data-cat="' + SG.esc(c) + '"><i></i>' + SG.esc(c) + "</span>";
    }).join("") + marks.map(function (m) { return '<span class="sg-mark ' + m[0] + '">' + SG.esc(m[1]) + "</span>"; }).join("");
  }
  function screenRegion(margin) {
    var w = canvas.clientWidth || 1000, h = canvas.clientHeight || 700;
    return {x: (-view.x - margin * w) / view.s, y: (-view.y - margin * h) / view.s,
            w: w * (1 + 2 * margin) / view.s, h: h * (1 + 2 * margin) / view.s};
  }
  function paint() {
    if (repaint) { cancelAnimationFrame(repaint); repaint = 0; }
    var far = view.s < FAR, region = lay.count > CULL ? screenRegion(1) : null;
    viewport.innerHTML = SG.svgOf(lay, labels, open, region, far);
    painted = {region: region, far: far};
    elements = new Map();
    viewport.querySelectorAll("[data-key]").forEach(function (el) { elements.set(el.getAttribute("data-key"), el); });
    markHits(); markSelected(); drawMinimap();
  }
  function inside(a, b) { return a.x >= b.x && a.y >= b.y && a.x + a.w <= b.x + b.w && a.y + a.h <= b.y + b.h; }

  var repaint = 0;
  function transform() {
    viewport.setAttribute("transform", "translate(" + view.x.toFixed(1) + "," + view.y.toFixed(1) + ") scale(" + view.s + ")");
    drawMinimap();
    if (!painted || !lay) return;
    var stale = painted.far !== view.s < FAR || painted.region && !inside(screenRegion(0), painted.region);
    if (stale && !repaint) repaint = requestAnimationFrame(function () { repaint = 0; paint(); });
  }

  function fit() {
    var w = canvas.clientWidth, h = canvas.clientHeight, m = 24;
    view.s = Math.min(1.2, (w - 2 * m) / Math.max(lay.width, 1), (h - 2 * m) / Math.max(lay.height, 1));
    view.x = (w - lay.width * view.s) / 2; view.y = m;
    transform();
  }
  function start() {  // the first view: all of it when readable, else its top at a readable scale
    fit();
    if (view.s >= 0.6) return;
    var w = canvas.clientWidth, m = 24;
    view.s = Math.max(view.s, Math.min(0.8, (w - 2 * m) / Math.max(lay.width, 1)));
    view.x = (w - lay.width * view.s) / 2; view.y = m;
    transform();
  }

  function zoomAt(factor, cx, cy) {
    var s = Math.max(0.02, Math.min(4, view.s * factor));
    view.x = cx - (cx - view.x) * s / view.s; view.y = cy - (cy - view.y) * s / view.s; view.s = s;
    transform();
  }

  function center(key) {
    var box = lay.boxes.get(G.byKey.get(key));
    if (!box) return;
    if (view.s < 0.6) view.s = 0.8;
    view.x = canvas.clientWidth / 2 - box.cx * view.s; view.y = canvas.clientHeight / 2 - box.cy * view.s;
    transform();
  }

  // Open or close a group, keeping it where it was on the screen.
  function toggle(key, state) {
    var g = G.byKey.get(key), box = lay.boxes.get(g);
    var sx = box ? box.x * view.s + view.x : 0, sy = box ? box.y * view.s + view.y : 0;
    if (state === undefined) state = !open.has(key);
    if (state) open.add(key); else open.delete(key);
    relayout();
    var now = lay.boxes.get(g);
    if (box && now) { view.x = sx - now.x * view.s; view.y = sy - now.y * view.s; }
    paint(); transform();
  }

  function reveal(key) {  // open every group around an element, so that it is drawn
    var e = G.byKey.get(key), changed = false;
    e.anc.slice(1).forEach(function (g) { if (!open.has(g.key)) { open.add(g.key); changed = true; } });
    if (changed) draw();
  }

  V.expandAll = function () {
    timed("expand", function () { G.groups.forEach(function (g) { open.add(g.key); }); relayout(); start(); paint(); });
  };
  V.collapseAll = function () { open = new Set(); relayout(); start(); paint(); };
  V.toggle = function (key, state) { timed("expand", function () { toggle(key, state); }); };
  V.visible = function () { return lay.count; };  // boxes in the view (the page holds those near the screen)
  V.drawn = function () { return viewport.querySelectorAll(".sg-node").length; };
  V.openKeys = function () { return Array.from(open); };
  V.select = function (key) { select(key); };

  // ---- selection and the panel -----------------------------------------------------------------
  function select(key) {
    selected = key;
    markSelected();
    showPanel();
  }
  function markSelected() {
    viewport.querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
    var el = selected && elements.get(selected);
    if (el) el.classList.add("selected");
  }

  function showPanel() { panel.innerHTML = SG.panelHtml(G, selected); }

  // ---- search ---------------------------------------------------------------------------------
  // Words match a path, op, category or label (substring); key=value matches a param.
  function matches(q) {
    var terms = q.trim().toLowerCase().split(/\s+/).filter(Boolean), found = [];
    if (!terms.length) return found;
    function ok(d, isGroup) {
      return terms.every(function (t) {
        var eq = t.indexOf("=");
        if (eq > 0) {
          var k = t.slice(0, eq), v = t.slice(eq + 1);
          return (d.params || []).some(function (p) {
            return p[0].toLowerCase() === k && (p[1].toLowerCase() === v || Number(p[1]) === Number(v) && v !== "");
          });
        }
        return [d.id, d.op, d.cat, d.label, isGroup ? d.name : null].some(function (f) { return f && String(f).toLowerCase().indexOf(t) >= 0; });
      });
    }
    G.nodes.forEach(function (e) { if (ok(e.data, false)) found.push(e); });
    G.groups.forEach(function (g) { if (g.kind !== "run" && ok(g.data, true)) found.push(g); });
    return found;
  }
  V.search = function (q) {
    if (search.value !== q) search.value = q;
    return timed("search", function () {
      hits = matches(q); hitAt = -1;
      markHits();
      return hits.length;
    });
  };
  function markHits() {
    viewport.querySelectorAll(".hit, .holds-hit").forEach(function (el) { el.classList.remove("hit", "holds-hit"); });
    var shown = new Map();
    hits.forEach(function (e) {
      var r = SG.rep(e, open), key = r.key;
      shown.set(key, (shown.get(key) || 0) + 1);
    });
    shown.forEach(function (n, key) {
      var el = elements.get(key), e = G.byKey.get(key);
      if (!el) return;
      el.classList.add(hits.indexOf(e) >= 0 && n === 1 ? "hit" : "holds-hit");
    });
    counter.textContent = search.value.trim() ? hits.length + " match" + (hits.length === 1 ? "" : "es") +
      (hitAt >= 0 ? " (" + (hitAt + 1) + ")" : "") : "";
  }
  function nextHit(step) {
    if (!hits.length) return;
    hitAt = (hitAt + step + hits.length) % hits.length;
    var key = hits[hitAt].key;
    reveal(key); select(key); center(key); markHits();
  }

  // ---- minimap --------------------------------------------------------------------------------
  var mapFrame = 0;
  function drawMinimap() {
    if (mapFrame) return;
    mapFrame = requestAnimationFrame(function () {
      mapFrame = 0;
      if (!lay) return;
      var w = canvas.clientWidth, h = canvas.clientHeight;
      var big = lay.width * view.s > w * 1.3 || lay.height * view.s > h * 1.3;
      minimap.hidden = !big;
      if (!big) return;
      var k = Math.min(180 / lay.width, 220 / lay.height), ctx = minimap.getContext("2d");
      minimap.width = Math.max(20, lay.width * k); minimap.height = Math.max(20, lay.height * k);
      var style = getComputedStyle(document.documentElement);
      ctx.fillStyle = style.getPropertyValue("--panel").trim() || "#fff";
      ctx.fillRect(0, 0, minimap.width, minimap.height);
      ctx.fillStyle = style.getPropertyValue("--node-map").trim() || "#99a";
      lay.boxes.forEach(function (b, e) { if (!(e.isGroup && open.has(e.key))) ctx.fillRect(b.x * k, b.y * k, Math.max(1, b.w * k), Math.max(1, b.h * k)); });
      ctx.strokeStyle = style.getPropertyValue("--accent").trim() || "#c00";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(-view.x / view.s * k, -view.y / view.s * k, w / view.s * k, h / view.s * k);
      minimap.scale = k;
    });
  }
  function fromMinimap(ev) {
    var r = minimap.getBoundingClientRect(), k = minimap.scale || 1;
    var gx = (ev.clientX - r.left) / k, gy = (ev.clientY - r.top) / k;
    view.x = canvas.clientWidth / 2 - gx * view.s; view.y = canvas.clientHeight / 2 - gy * view.s;
    transform();
  }

  // ---- export ---------------------------------------------------------------------------------
  var VARS = ["--bg", "--fg", "--muted", "--edge", "--skip", "--error", "--error-fill", "--frame", "--frame-0", "--frame-1",
              "--frame-2", "--frame-3", "--node", "--node-stroke", "--hit", "--accent", "--c-conv", "--c-linear", "--c-pool",
              "--c-norm", "--c-activation", "--c-dropout", "--c-merge", "--c-math", "--c-split", "--c-reshape", "--c-resample",
              "--c-recurrent", "--c-embedding", "--c-attention", "--c-other", "--c-user0", "--c-user1", "--c-user2", "--c-user3"];
  function exportSvg() {
    var style = getComputedStyle(document.documentElement), m = 16;
    var vars = VARS.map(function (v) { return v + ":" + style.getPropertyValue(v).trim(); }).join(";");
    var css = "svg{" + vars + "}" + $("#sg-diagram-css").textContent;
    var defs = svg.querySelector("defs").outerHTML;
    return '<svg xmlns="http://www.w3.org/2000/svg" width="' + (lay.width + 2 * m) + '" height="' + (lay.height + 2 * m) +
      '" viewBox="' + -m + " " + -m + " " + (lay.width + 2 * m) + " " + (lay.height + 2 * m) + '" class="sg-export"><style>' + css +
      "</style>" + defs + '<rect x="' + -m + '" y="' + -m + '" width="100%" height="100%" style="fill:var(--bg)"/>' +
      viewport.innerHTML + "</svg>";
  }
  function download(name, blob) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  }
  V.exportSvg = exportSvg;
  V.exportPng = function (callback) {
    var text = exportSvg(), img = new Image(), k = Math.min(2, 16000 / Math.max(lay.width, lay.height));
    img.onload = function () {
      var c = document.createElement("canvas");
      c.width = Math.ceil((lay.width + 32) * k); c.height = Math.ceil((lay.height + 32) * k);
      var ctx = c.getContext("2d");
      ctx.scale(k, k); ctx.drawImage(img, 0, 0);
      c.toBlob(function (blob) { (callback || function (b) { download(G.model.name + ".png", b); })(blob); }, "image/png");
    };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  };

  // ---- events ---------------------------------------------------------------------------------
  var drag = null;
  svg.addEventListener("pointerdown", function (ev) {
    drag = {x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false};
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved) { view.x = drag.vx + dx; view.y = drag.vy + dy; transform(); }
  });
  window.addEventListener("pointerup", function () { setTimeout(function () { drag = null; }, 0); });
  svg.addEventListener("click", function (ev) {
    if (drag && drag.moved) return;
    var el = ev.target.closest("[data-key]");
    if (!el) { select(null); return; }
    var key = el.getAttribute("data-key"), e = G.byKey.get(key);
    if (e.isGroup) {
      var onCaption = el.classList.contains("sg-frame") ? !!ev.target.closest(".sg-cap") : true;
      if (onCaption) V.toggle(key);
    }
    select(key);
  });
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = svg.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * (ev.deltaMode ? 0.05 : 0.0015)), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  minimap.addEventListener("pointerdown", function (ev) { ev.stopPropagation(); fromMinimap(ev); minimap.dragging = true; });
  minimap.addEventListener("pointermove", function (ev) { if (minimap.dragging) fromMinimap(ev); });
  window.addEventListener("pointerup", function () { minimap.dragging = false; });
  panel.addEventListener("click", function (ev) {
    var err = ev.target.closest("[data-error]");
    if (!err) return;
    var i = Number(err.getAttribute("data-error")), failing = G.nodes.filter(function (e) {
      return e.kind === "error" && (e.data.errors || []).indexOf(i) >= 0;
    })[0];
    if (failing) { reveal(failing.key); select(failing.key); center(failing.key); }
  });
  search.addEventListener("input", function () { V.search(search.value); });
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { nextHit(ev.shiftKey ? -1 : 1); ev.preventDefault(); }
    if (ev.key === "Escape") { search.value = ""; V.search(""); search.blur(); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.target === search || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var w = canvas.clientWidth, h = canvas.clientHeight, step = 80;
    var act = {
      "/": function () { search.focus(); }, "f": fit, "0": fit, "e": V.expandAll, "c": V.collapseAll,
      "+": function () { zoomAt(1.25, w / 2, h / 2); }, "=": function () { zoomAt(1.25, w / 2, h / 2); },
      "-": function () { zoomAt(0.8, w / 2, h / 2); }, "t": cycleTheme, "n": function () { nextHit(1); },
      "ArrowLeft": function () { view.x += step; transform(); }, "ArrowRight": function () { view.x -= step; transform(); },
      "ArrowUp": function () { view.y += step; transform(); }, "ArrowDown": function () { view.y -= step; transform(); },
      "Escape": function () { select(null); }
    }[ev.key];
    if (act) { act(); ev.preventDefault(); }
  });
  document.querySelectorAll("[data-act]").forEach(function (b) {
    b.addEventListener("click", function () {
      ({fit: fit, expand: V.expandAll, collapse: V.collapseAll, theme: cycleTheme,
        svg: function () { download(G.model.name + ".svg", new Blob([exportSvg()], {type: "image/svg+xml"})); },
        png: function () { V.exportPng(); }})[b.getAttribute("data-act")]();
    });
  });
  function cycleTheme() {  // light <-> dark; back to following the OS whenever the choice is the OS's
    var root = document.documentElement, os = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
    var next = (root.getAttribute("data-theme") || os) === "dark" ? "light" : "dark";
    if (next === os) root.removeAttribute("data-theme"); else root.setAttribute("data-theme", next);
    drawMinimap();
  }
  window.addEventListener("resize", drawMinimap);

  // ---- start, and live updates -------------------------------------------------------------------
  timed("open", function () {
    load(JSON.parse($("#specgraph-model").textContent), false);
    relayout(); start(); paint(); showPanel();
  });
  requestAnimationFrame(function () { V.timings.firstPaint = performance.now(); V.ready = true; });

  if (window.SPECGRAPH_LIVE) {
    // The page shows the server's model of version `shown`, and draws only newer ones: fetches
    // may answer out of order. It fetches on every change event and each time the event stream
    // (re)connects, since a save between the page's load and the stream's start sends no event.
    var shown = window.SPECGRAPH_LIVE.version;
    var update = function () {
      fetch("model.json", {cache: "no-store"}).then(function (r) {
        var version = Number(r.headers.get("X-Specgraph-Version"));
        return r.json().then(function (model) { return {version: version, model: model}; });
      }).then(function (got) {
        if (!(got.version > shown)) return;
        shown = got.version;
        var keep = {x: view.x, y: view.y, s: view.s};
        load(got.model, true);
        relayout();
        view = keep; transform(); paint(); showPanel();
        V.version = (V.version || 0) + 1;
      });
    };
    var source = new EventSource("events");
    source.addEventListener("open", update);
    source.addEventListener("model", update);
  }
})();
