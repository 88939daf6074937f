/* specgraph viewer: the model as a tree of elements, what is visible, and where it goes.
 *
 * Elements are nodes (inputs, ops, outputs, failures) and groups (blocks, seqs, runs of one
 * structure, scans opened into their cell).  A view is the set of open groups: a node inside
 * a closed group is drawn as that group, and an edge between two nodes as an edge between
 * what stands for them.  Each open group is laid out on its own (Layered.layout, its items
 * and the edges among them; edges from outside enter through a port at its top, edges to the
 * outside leave through one at its bottom) and nested in its parent at the size it came out,
 * so opening a block lays out that block and its ancestors only, and layouts are cached.
 */
"use strict";
var SG = window.SG || (window.SG = {});

SG.buildGraph = function (model) {
  var G = {model: model, nodes: [], groups: [], edges: [], recurrent: [], byKey: new Map(), maxLevel: 0};
  var root = G.root = {key: "", kind: "root", isGroup: true, children: [], anc: [], level: 0};
  G.byKey.set("", root);

  function addGroup(key, kind, data, parent, extra) {
    var g = {key: key, kind: kind, data: data, isGroup: true, children: [], parent: parent,
             anc: parent.anc.concat([parent]), level: parent.level + (kind === "block" || kind === "scan" ? 1 : 0)};
    for (var k in extra || {}) g[k] = extra[k];
    if (g.level > G.maxLevel) G.maxLevel = g.level;
    G.groups.push(g); G.byKey.set(key, g); parent.children.push(g);
    return g;
  }

  // One model level (the graph, or a scan's cell inside `host`): its scopes, runs and nodes.
  function load(m, prefix, host) {
    var scopeGroup = new Array(m.scopes.length), runOf = {}, elems = new Array(m.nodes.length);
    (m.runs || []).forEach(function (run) { run.forEach(function (s, i) { runOf[s] = {run: run, index: i}; }); });
    var runGroup = {};
    function groupOf(s) {  // the group of scope s, made (with its parents) when first needed
      if (s < 0) return host;
      if (scopeGroup[s]) return scopeGroup[s];
      var sc = m.scopes[s], parent = groupOf(sc.parent), r = runOf[s];
      if (r) {
        var first = r.run[0];
        if (!runGroup[first]) {
          runGroup[first] = addGroup("r:" + prefix + m.scopes[first].id, "run", m.scopes[first], parent,
                                     {copies: r.run.map(function (i) { return m.scopes[i]; })});
        }
        parent = runGroup[first];
      }
      scopeGroup[s] = addGroup("s:" + prefix + sc.id, sc.kind, sc, parent);
      return scopeGroup[s];
    }
    m.nodes.forEach(function (n, i) {
      var parent = groupOf(n.scope), e;
      if (n.cell) {
        e = addGroup("c:" + prefix + n.id, "scan", n, parent, {cellOf: n});
      } else {
        e = {key: "n:" + prefix + n.id, kind: n.kind, data: n, isGroup: false, parent: parent,
             anc: parent.anc.concat([parent]), index: G.nodes.length};
        G.nodes.push(e); G.byKey.set(e.key, e); parent.children.push(e);
      }
      elems[i] = e;
    });
    m.nodes.forEach(function (n, i) {
      (n.in || []).forEach(function (input) {
        var src = m.nodes[input[0]], port = input[1];
        var out = (src.out || []).filter(function (o) { return o[0] === port; })[0];
        G.edges.push({tail: elems[input[0]], head: elems[i], port: port, many: (src.out || []).length > 1,
                      label: out ? out[1] : "", sizeOnly: !!input[2], role: input[3] || ""});
      });
    });
    m.nodes.forEach(function (n, i) {
      if (n.cell) load(n.cell, prefix + n.id + "::", elems[i]);
    });
    if (m.states) {  // a cell: each state's output feeds its input at the next step
      m.states.forEach(function (s) {
        var out = G.byKey.get("n:" + prefix + "@out/" + s), input = G.byKey.get("n:" + prefix + s);
        if (out && input) G.recurrent.push({tail: out, head: input, state: s});
      });
    }
  }
  load(model, "", root);
  return G;
};

// ---- views --------------------------------------------------------------------------------
SG.openAtDepth = function (G, depth) {
  var open = new Set();
  G.groups.forEach(function (g) {
    if (g.kind !== "run" && g.kind !== "scan" && g.level <= depth) open.add(g.key);
  });
  return open;
};

SG.rep = function (elem, open) {  // what stands for `elem`: its outermost closed group, or itself
  for (var i = 1; i < elem.anc.length; i++) if (!open.has(elem.anc[i].key)) return elem.anc[i];
  return elem;
};

SG.visibleEdges = function (G, open) {
  var seen = new Map(), out = [];
  G.edges.forEach(function (e) {
    var a = SG.rep(e.tail, open), b = SG.rep(e.head, open);
    if (a === b) return;
    var key = a.key + ">" + b.key + ">" + e.tail.key + ">" + e.port;
    var ve = seen.get(key);
    if (ve) {
      ve.sizeOnly = ve.sizeOnly && e.sizeOnly;
      if (ve.role !== e.role) ve.role = e.role === "bridge" || ve.role === "bridge" ? "bridge" : "";
      return;
    }
    ve = {a: a, b: b, label: e.label, port: e.many ? e.port : null, sizeOnly: e.sizeOnly, role: e.role, key: key};
    seen.set(key, ve); out.push(ve);
  });
  return out;
};

// ---- sizes ----------------------------------------------------------------------------------
SG.PAD = 10; SG.CAPTION = 34;
SG.measure = (function () {
  var ctx = document.createElement("canvas").getContext("2d"), cache = new Map();
  return function (text, font) {
    var k = font + "\u0000" + text, w = cache.get(k);
    if (w === undefined) { ctx.font = font; w = ctx.measureText(text).width; cache.set(k, w); }
    return w;
  };
})();

// ---- layout -------------------------------------------------------------------------------
SG.Layout = function (G) { this.G = G; this.cache = new Map(); };

SG.Layout.prototype.run = function (open, labels) {
  var G = this.G, self = this;
  var edges = SG.visibleEdges(G, open);
  var levels = new Map();  // open group -> {items, edges: Map key -> level edge}
  function levelOf(g) {
    var l = levels.get(g);
    if (!l) { l = {edges: new Map(), top: false, bottom: false}; levels.set(g, l); }
    return l;
  }
  function note(g, from, to, ve, kind) {
    var l = levelOf(g), key = (from ? from.key : "\u22a4") + ">" + (to ? to.key : "\u22a5");
    var le = l.edges.get(key);
    if (!le) { le = {from: from, to: to, roles: new Set(), key: key}; l.edges.set(key, le); }
    le.roles.add(ve.role);
    if (!from) l.top = true;
    if (!to) l.bottom = true;
    return {group: g, key: key, kind: kind};
  }
  edges.forEach(function (ve) {
    var A = ve.a.anc.concat([ve.a]), B = ve.b.anc.concat([ve.b]), p = 0;
    while (p < A.length && p < B.length && A[p] === B[p]) p++;
    var segs = [];
    for (var j = A.length - 2; j >= p; j--) segs.push(note(A[j], A[j + 1], null, ve, "out"));
    segs.push(note(A[p - 1], A[p], B[p], ve, "mid"));
    for (j = p; j <= B.length - 2; j++) segs.push(note(B[j], null, B[j + 1], ve, "in"));
    ve.segs = segs;
  });
  var sizes = new Map();
  function lay(g) {  // lays out open group g (children first); returns its inner layout
    var l = levelOf(g);
    g.children.forEach(function (c) { if (c.isGroup && open.has(c.key)) lay(c); });
    var items = g.children, idx = new Map(), nodes = [];
    items.forEach(function (c, i) {
      var s = c.isGroup && open.has(c.key) ? levels.get(c).size : labels.size(c);
      sizes.set(c, s); idx.set(c, i); nodes.push({w: s.w, h: s.h, order: i});
    });
    var topPort = -1, bottomPort = -1;
    if (l.top) { topPort = nodes.length; nodes.push({w: 1, h: 0, order: -1, pin: "first"}); }
    if (l.bottom) { bottomPort = nodes.length; nodes.push({w: 1, h: 0, order: items.length, pin: "last"}); }
    var list = Array.from(l.edges.values()), fe = [];
    list.forEach(function (le) {
      fe.push({v: le.from ? idx.get(le.from) : topPort, w: le.to ? idx.get(le.to) : bottomPort,
               weight: le.roles.has("skip") && le.roles.size === 1 ? 0.2 : 1});
    });
    var rising = uShape(list, fe, idx, items.length);
    var key = g.key + "|" + signature(g, open, list);
    var res = self.cache.get(key);
    if (!res) { res = Layered.layout(nodes, fe, {ranksep: 42, nodesep: 26, edgesep: 12}); self.cache.set(key, res); }
    l.res = res; l.items = items; l.list = list; l.rising = rising; l.topPort = topPort; l.bottomPort = bottomPort;
    var pad = g === G.root ? 0 : SG.PAD, cap = g === G.root ? 0 : SG.CAPTION;
    l.size = {w: Math.max(res.width + 2 * pad, g === G.root ? 0 : labels.captionWidth(g) + 2 * pad),
              h: res.height + 2 * pad + cap};
    l.inner = {x: pad, y: pad + cap};
    return l;
  }
  lay(G.root);
  // absolute positions: each item's box, each open group's frame
  var boxes = new Map(), frames = [];
  function place(g, ox, oy) {
    var l = levels.get(g), res = l.res;
    var shift = (l.size.w - 2 * (g === G.root ? 0 : SG.PAD) - res.width) / 2;  // a caption wider than the items
    l.origin = {x: ox + l.inner.x + shift, y: oy + l.inner.y};
    l.items.forEach(function (c, i) {
      var s = sizes.get(c), cx = l.origin.x + res.x[i], cy = l.origin.y + res.y[i];
      var box = {x: cx - s.w / 2, y: cy - s.h / 2, w: s.w, h: s.h, cx: cx, cy: cy};
      boxes.set(c, box);
      if (c.isGroup && open.has(c.key)) { frames.push({g: c, box: box}); place(c, box.x, box.y); }
    });
  }
  place(G.root, 0, 0);
  var rootSize = levels.get(G.root).size;
  // edge paths: tail anchor, the bend points of each level the edge crosses, head anchor
  edges.forEach(function (ve) {
    var pts = [];
    ve.segs.forEach(function (s) {
      var l = levels.get(s.group), k = indexOfKey(l, s.key);
      var route = l.res.routes[k] || [], o = l.origin;
      var seg = route.map(function (p) { return {x: o.x + p.x, y: o.y + p.y}; });
      if (l.rising.has(k)) seg.reverse();
      if (s.kind === "out") seg.push(port(l, l.bottomPort));
      if (s.kind === "in") seg.unshift(port(l, l.topPort));
      pts = pts.concat(seg);
    });
    ve.points = anchors(boxes.get(ve.a), boxes.get(ve.b), pts);
  });
  return {edges: edges, boxes: boxes, frames: frames, width: rootSize.w, height: rootSize.h};
};

function indexOfKey(l, key) {
  if (!l.keyIndex) { l.keyIndex = new Map(); l.list.forEach(function (le, i) { l.keyIndex.set(le.key, i); }); }
  return l.keyIndex.get(key);
}

// A port is a corner of the drawn path: straight into it, then curving on to the next box.
function port(l, i) { return {x: l.origin.x + l.res.x[i], y: l.origin.y + l.res.y[i], corner: true}; }

// The ends of an edge on its boxes' borders: below the tail and above the head, or the
// other way round where the head sits higher (the rising side of a U), or side by side.
function anchors(a, b, mid) {
  var first = mid.length ? mid[0] : {x: b.cx, y: b.cy}, last = mid.length ? mid[mid.length - 1] : {x: a.cx, y: a.cy};
  function end(box, toward) {
    if (toward.y > box.y + box.h) return {x: box.cx, y: box.y + box.h};
    if (toward.y < box.y) return {x: box.cx, y: box.y};
    return {x: toward.x > box.cx ? box.x + box.w : box.x, y: box.cy};
  }
  return [end(a, first)].concat(mid, [end(b, last)]);
}

// U-Net: bridges hold their ends on one rank, and the side after the innermost bridge rises.
function uShape(list, fe, idx, n) {
  var rising = new Set(), bridges = [];
  list.forEach(function (le, k) { if (le.roles.has("bridge") && le.from && le.to) bridges.push(k); });
  if (!bridges.length) return rising;
  var succ = [], pred = [];
  for (var i = 0; i < n; i++) { succ.push([]); pred.push([]); }
  list.forEach(function (le, k) {
    if (le.from && le.to && bridges.indexOf(k) < 0) { succ[fe[k].v].push(fe[k].w); pred[fe[k].w].push(fe[k].v); }
  });
  var inner = bridges.reduce(function (a, b) { return fe[b].v > fe[a].v ? b : a; });
  var up = closure(fe[inner].w, succ), bottom = closure(fe[inner].v, succ), below = closure(fe[inner].w, pred);
  bottom.forEach(function (v) { if (!below.has(v)) bottom.delete(v); });
  bridges.forEach(function (k) { fe[k].same = true; });
  list.forEach(function (le, k) {
    var e = fe[k];
    if (!e.same && le.from && le.to && up.has(e.w) && (up.has(e.v) || bottom.has(e.v))) {
      var t = e.v; e.v = e.w; e.w = t; rising.add(k);
    }
  });
  return rising;
}

function closure(start, adj) {
  var seen = new Set([start]), stack = [start];
  while (stack.length) adj[stack.pop()].forEach(function (v) { if (!seen.has(v)) { seen.add(v); stack.push(v); } });
  return seen;
}

// What a group's layout depends on: which of its descendants are open, and its edges.
function signature(g, open, list) {
  var parts = [];
  (function walk(x) {
    x.children.forEach(function (c) { if (c.isGroup && open.has(c.key)) { parts.push(c.key); walk(c); } });
  })(g);
  return parts.join(",") + "#" + list.map(function (le) { return le.key; }).join(",");
}
