/* specgraph viewer: what each box says, its size, and the SVG of a laid-out view. */
"use strict";
var SG = window.SG || (window.SG = {});

SG.FONT = "12px sans-serif"; SG.BOLD = "bold 12px sans-serif"; SG.SMALL = "11px sans-serif";
var LINE = {t: 16, s: 14};

SG.esc = function (s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
  });
};

function shortName(path) {
  var parts = String(path).split(".");
  if (parts.length > 1 && /^\d+$/.test(parts[parts.length - 1])) return parts.slice(-2).join(".");
  return parts[parts.length - 1];
}
SG.shortName = shortName;

function shapeText(t) {  // "[N, 64, H/2, W/2]" -> "N×64×H/2×W/2" (the static diagrams' edge label)
  return String(t).replace(/^\[|\]$/g, "").split(", ").join("×");
}

function wrap(text, width) {
  var words = String(text).split(/\s+/), lines = [], cur = "";
  words.forEach(function (w) {
    if (cur && (cur + " " + w).length > width) { lines.push(cur); cur = w; } else cur = cur ? cur + " " + w : w;
  });
  if (cur) lines.push(cur);
  return lines;
}

function keyParams(data) {  // given, or unlike the block's defaults (as the static diagrams show them)
  return (data.params || []).filter(function (p) { return !p[2]; }).map(function (p) { return p[0] + " " + p[1]; }).join(" · ");
}

function ranges(copies) {  // the block params that differ along a run: "sd_prob 0 … 0.1"
  var first = copies[0].params || [], out = [];
  first.forEach(function (p, i) {
    var values = copies.map(function (c) { return (c.params[i] || [])[1]; });
    var varies = values.some(function (v) { return v !== values[0]; });
    if (p[2] && !varies) return;
    if (varies) {
      var nums = values.map(Number);
      var range = nums.every(function (v) { return !isNaN(v); })
        ? [Math.min.apply(null, nums), Math.max.apply(null, nums)].map(function (v) { return values[nums.indexOf(v)]; })
        : [values[0], values[values.length - 1]];
      out.push(p[0] + " " + range[0] + " … " + range[1]);
    } else out.push(p[0] + " " + p[1]);
  });
  return out.join(" · ");
}

// The lines of an element's box: [{text, cls}], cls t (title, bold) or s (small).
SG.lines = function (e) {
  var d = e.data, L = [];
  function s(text) { wrap(text, 46).slice(0, 3).forEach(function (t) { L.push({text: t, cls: "s"}); }); }
  if (!e.isGroup) {
    if (e.kind === "input") { L.push({text: d.name, cls: "t"}); L.push({text: shapeText(d.out[0][2]), cls: "s"}); }
    else if (e.kind === "output") { L.push({text: d.name, cls: "t"}); L.push({text: d.train_only ? "output, train only" : "output", cls: "s"}); }
    else if (e.kind === "error") {
      L.push({text: shortName(d.id.replace(/@error$/, "")) + " " + d.op, cls: "t"});
      var errs = (d.errors || []).map(function (i) { return SG.graph.model.errors[i]; });
      errs.slice(0, 2).forEach(function (x) {
        wrap("error[" + x.code + "] " + x.message, 48).slice(0, 4).forEach(function (t) { L.push({text: t, cls: "s err"}); });
      });
    } else {
      L.push({text: d.op + (d.label ? " " + d.label : ""), cls: "t", bold: d.op.length});
      var extra = [];
      if (d.name !== d.op && !/^\d+$/.test(d.name)) extra.push(d.name);
      if (d.count && d.count !== "0") extra.push(d.count + " params");
      if (extra.length) L.push({text: extra.join(" · "), cls: "s"});
      if (d.fused) L.push({text: "fused: " + d.fused, cls: "s fused"});
    }
    return L;
  }
  if (e.kind === "scan") {
    L.push({text: "scan " + d.label, cls: "t"});
    L.push({text: d.name + (d.count && d.count !== "0" ? " · " + d.count + " params" : "") + " · open: the cell", cls: "s"});
    return L;
  }
  var times = e.kind === "run" ? " ×" + e.copies.length : "";
  var kind = d.kind === "block" ? d.name : d.name === "repeat" ? "repeat" : "seq";
  L.push({text: shortName(d.id) + times + " : " + kind, cls: "t"});
  if (d.kind === "block") s(e.kind === "run" ? ranges(e.copies) : keyParams(d));
  if (e.kind === "run") L.push({text: d.id + " … " + e.copies[e.copies.length - 1].id + ", drawn once", cls: "s"});
  if (d.out.length) L.push({text: (d.in.map(shapeText).join(", ") || "—") + " → " + d.out.map(function (o) { return shapeText(o[1]); }).join(", "), cls: "s"});
  if (d.count && d.count !== "0") L.push({text: d.count + " params" + (e.kind === "run" ? " each" : ""), cls: "s"});
  return L.filter(function (l) { return l.text; });
};

SG.Labels = function () { this.cache = new Map(); };
SG.Labels.prototype.size = function (e) {
  var hit = this.cache.get(e);
  if (hit) return hit;
  var lines = SG.lines(e), w = 0, h = 8;
  lines.forEach(function (l) {
    w = Math.max(w, SG.measure(l.text, l.cls === "t" ? SG.BOLD : SG.SMALL));
    h += LINE[l.cls[0]];
  });
  hit = {w: Math.ceil(w) + 20, h: h, lines: lines};
  this.cache.set(e, hit);
  return hit;
};
SG.Labels.prototype.captionWidth = function (g) {
  return Math.max.apply(null, SG.lines(g).map(function (l) { return SG.measure(l.text, l.cls === "t" ? SG.BOLD : SG.SMALL); }));
};

var FALLBACK = ["#e3d3e8", "#cfe0d8", "#e0d0d0", "#d0d8e8"];
var KNOWN = ["conv", "linear", "pool", "norm", "activation", "dropout", "merge", "math", "split", "reshape",
             "resample", "recurrent", "embedding", "attention", "other"];
SG.categoryClass = function (cat) {
  if (KNOWN.indexOf(cat) >= 0) return "cat-" + cat;
  var sum = 0;
  for (var i = 0; i < cat.length; i++) sum += cat.charCodeAt(i);
  return "cat-user" + (sum % FALLBACK.length);
};

function textLines(lines, w, y0) {
  var out = "", y = y0;
  lines.forEach(function (l) {
    y += LINE[l.cls[0]];
    if (l.bold) {
      out += '<text class="' + l.cls + '" x="' + (w / 2) + '" y="' + (y - 4) + '"><tspan class="b">' + SG.esc(l.text.slice(0, l.bold)) +
        "</tspan>" + SG.esc(l.text.slice(l.bold)) + "</text>";
    } else out += '<text class="' + l.cls + '" x="' + (w / 2) + '" y="' + (y - 4) + '">' + SG.esc(l.text) + "</text>";
  });
  return out;
}

function pathOf(points) {  // smooth curves through the points, broken at corners (ports)
  var d = "", piece = [];
  points.forEach(function (q, i) {
    piece.push(q);
    if (q.corner && i > 0 && i < points.length - 1) { d += curve(piece, !d); piece = [q]; }
  });
  return d + curve(piece, !d);
}

function curve(p, move) {  // Catmull-Rom through the points, as cubic Béziers
  if (p.length < 2) return "";
  var d = move ? "M" + p[0].x.toFixed(1) + "," + p[0].y.toFixed(1) : "";
  if (p.length === 2) return d + "L" + p[1].x.toFixed(1) + "," + p[1].y.toFixed(1);
  for (var i = 0; i < p.length - 1; i++) {
    var a = p[i - 1] || p[i], b = p[i], c = p[i + 1], e = p[i + 2] || c;
    d += "C" + (b.x + (c.x - a.x) / 6).toFixed(1) + "," + (b.y + (c.y - a.y) / 6).toFixed(1) + " " +
      (c.x - (e.x - b.x) / 6).toFixed(1) + "," + (c.y - (e.y - b.y) / 6).toFixed(1) + " " + c.x.toFixed(1) + "," + c.y.toFixed(1);
  }
  return d;
}

function midpoint(p) {
  if (p.length === 2) return {x: (p[0].x + p[1].x) / 2, y: (p[0].y + p[1].y) / 2};
  var a = p[Math.floor((p.length - 1) / 2)], b = p[Math.floor(p.length / 2)];
  return {x: (a.x + b.x) / 2, y: (a.y + b.y) / 2};
}

// The SVG of a laid-out view: frames, then edges, then boxes (drawn over the edges); only what
// meets `region` (in diagram coordinates; null: everything), and without text when `far`.
SG.svgOf = function (lay, labels, open, region, far) {
  var out = [];
  function meets(x, y, w, h) {
    return !region || (x < region.x + region.w && x + w > region.x && y < region.y + region.h && y + h > region.y);
  }
  lay.frames.forEach(function (f) {
    var g = f.g, b = f.box;
    if (!meets(b.x, b.y, b.w, b.h)) return;
    if (far) {
      out.push('<g class="sg-frame k-' + g.kind + " lvl" + Math.min(g.level, 3) + '" data-key="' + SG.esc(g.key) + '"><rect x="' +
        b.x + '" y="' + b.y + '" width="' + b.w + '" height="' + b.h + '" rx="8"/></g>');
      return;
    }
    var lines = SG.lines(g);
    out.push('<g class="sg-frame k-' + g.kind + " lvl" + Math.min(g.level, 3) + '" data-key="' + SG.esc(g.key) + '">' +
      '<rect x="' + b.x + '" y="' + b.y + '" width="' + b.w + '" height="' + b.h + '" rx="8"/>' +
      '<g class="sg-cap" transform="translate(' + (b.x + SG.PAD) + "," + (b.y + 4) + ')">' +
      '<rect width="' + Math.max(10, b.w - 2 * SG.PAD) + '" height="' + (SG.CAPTION - 6) + '"/>' +
      '<text class="t" x="0" y="12">' + SG.esc(lines[0].text) + (" \u25be") + "</text>" +
      (lines[1] ? '<text class="s" x="0" y="26">' + SG.esc(lines[1].text) + "</text>" : "") + "</g></g>");
  });
  var labelled = new Set();  // one shape label per value leaving a box, however many edges carry it
  lay.edges.forEach(function (ve) {
    if (region) {
      var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      ve.points.forEach(function (p) { x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y); });
      if (!meets(x0, y0, x1 - x0 + 1, y1 - y0 + 1)) return;
    }
    var cls = "sg-edge" + (ve.role ? " " + ve.role : "") + (ve.sizeOnly ? " size" : "") +
      (ve.b.kind === "error" ? " error" : "");
    if (far) { out.push('<g class="' + cls + '"><path d="' + pathOf(ve.points) + '"/></g>'); return; }
    var mid = midpoint(ve.points), label = ve.port ? ve.port + ": " + ve.label : ve.label;
    var flat = ve.points.length === 2 && Math.abs(ve.points[0].y - ve.points[1].y) < 1;
    if (flat) mid = {x: Math.min(ve.points[0].x, ve.points[1].x) - 2, y: mid.y - 8};  // a bridge: above its line
    if (ve.sizeOnly) label += " (size)";
    var once = ve.a.key + ">" + label + ">" + (ve.b.anc.length > 1 ? ve.b.anc[ve.b.anc.length - 1].key : "");
    var text = labelled.has(once) ? "" : '<text x="' + (mid.x + 4).toFixed(1) + '" y="' + (mid.y + 3).toFixed(1) + '">' +
      SG.esc(label) + "</text>";
    labelled.add(once);
    out.push('<g class="' + cls + '" data-edge="' + SG.esc(ve.key) + '"><path d="' + pathOf(ve.points) + '"/>' + text + "</g>");
  });
  if (!far) (lay.recurrent || []).forEach(function (r) {
    out.push('<g class="sg-edge recurrent"><path d="' + pathOf(r.points) + '"/><text x="' + (r.label.x) + '" y="' +
      r.label.y + '">' + SG.esc(r.state + " \u2192 next step") + "</text></g>");
  });
  lay.boxes.forEach(function (b, e) {
    if (e.isGroup && open.has(e.key) || !meets(b.x, b.y, b.w, b.h)) return;
    var s = labels.size(e), d = e.data;
    var cls = "sg-node k-" + e.kind + (e.isGroup ? " closed" : "") + (d.cat ? " " + SG.categoryClass(d.cat) : "");
    out.push('<g class="' + cls + '" data-key="' + SG.esc(e.key) + '" transform="translate(' + b.x.toFixed(1) + "," +
      b.y.toFixed(1) + ')"><rect width="' + s.w + '" height="' + s.h + '" rx="6"/>' + (far ? "" : textLines(s.lines, s.w, 4)) + "</g>");
  });
  return out.join("");
};

// A recurrent edge (a cell's state, from its output back up to its input), drawn outside the
// layout as Graphviz draws an edge with constraint=false: round the right of both boxes.
SG.recurrentPaths = function (G, lay) {
  var out = [];
  G.recurrent.forEach(function (r) {
    var a = lay.boxes.get(r.tail), b = lay.boxes.get(r.head);
    if (!a || !b) return;
    var x = Math.max(a.x + a.w, b.x + b.w) + 24;
    var pts = [{x: a.x + a.w, y: a.cy}, {x: x, y: a.cy - 10}, {x: x, y: b.cy + 10}, {x: b.x + b.w, y: b.cy}];
    out.push({points: pts, state: r.state, label: {x: x + 4, y: (a.cy + b.cy) / 2}});
  });
  return out;
};
