/* specgraph viewer: the layered layout of one flat graph (one open block's items).
 *
 * The Sugiyama scheme Graphviz's dot also follows — ranks, dummy nodes on long edges, layer
 * ordering by barycentres, then coordinates — written for what network graphs are: long
 * chains with branches that meet again.  Every phase is linear in the graph (times a fixed
 * number of sweeps), so a block of 2,000 nodes lays out in tens of milliseconds; the viewer
 * lays out each open block on its own and nests the results (viewer.js).
 *
 *   Layered.layout(nodes, edges, opts) -> {x, y, width, height, routes}
 *     nodes: [{w, h, order, pin}]         sizes; `order` breaks ties (the spec's order);
 *                                         pin "first"/"last": alone on the top/bottom rank (a port)
 *     edges: [{v, w, same, weight}]       v -> w by index; `same`: both ends on one rank (a bridge)
 *     routes[k]: the bend points of edge k, tail to head (the dummy nodes of a long edge)
 */
"use strict";
var Layered = (function () {
  function layout(nodes, edges, opts) {
    opts = opts || {};
    var ranksep = opts.ranksep || 40, nodesep = opts.nodesep || 24, edgesep = opts.edgesep || 10;
    var n = nodes.length;
    var rank = assignRanks(n, edges, nodes);
    // ---- dummies: a long edge becomes a chain of narrow nodes, one per rank it crosses
    var W = [], H = [], R = [], ORD = [], isDummy = [];
    for (var i = 0; i < n; i++) { W.push(nodes[i].w); H.push(nodes[i].h); R.push(rank[i]); ORD.push(nodes[i].order); isDummy.push(false); }
    var succ = [], pred = [], weight = [], predWeight = [];
    function link(a, b, wt) { succ[a].push(b); pred[b].push(a); weight[a].push(wt); predWeight[b].push(wt); }
    function grow() { succ.push([]); pred.push([]); weight.push([]); predWeight.push([]); }
    for (i = 0; i < n; i++) grow();
    var chains = [], flat = [];
    edges.forEach(function (e, k) {
      var a = e.v, b = e.w, wt = e.weight || 1;
      if (R[a] === R[b]) { chains.push([]); if (a !== b) flat.push(k); return; }
      if (R[a] > R[b]) { var t = a; a = b; b = t; }
      // A long edge exists only because a longer path joins its ends (the ranks are longest
      // paths): it bypasses, so its ends pull little and the path it bypasses stays straight,
      // while its own dummies hold together in a straight lane beside it.
      var chain = [], prev = a, end = R[b] - R[a] > 1 ? wt * 0.05 : wt;
      for (var r = R[a] + 1; r < R[b]; r++) {
        var d = W.length;
        W.push(edgesep); H.push(0); R.push(r); ORD.push(ORD[a] + (r - R[a]) / (R[b] - R[a] + 1)); isDummy.push(true);
        grow(); link(prev, d, prev === a ? end : 4); chain.push(d); prev = d;
      }
      link(prev, b, end);
      chains.push(e.v === a ? chain : chain.slice().reverse());
    });
    var total = W.length, maxRank = 0;
    for (i = 0; i < total; i++) if (R[i] > maxRank) maxRank = R[i];
    var layers = [];
    for (i = 0; i <= maxRank; i++) layers.push([]);
    for (i = 0; i < total; i++) layers[R[i]].push(i);
    layers.forEach(function (l) { l.sort(function (a, b) { return ORD[a] - ORD[b]; }); });
    order(layers, succ, pred, total);
    if (flat.length) keepBridgesLeftToRight(layers, edges, flat, total);
    var X = coordinates(layers, succ, pred, weight, predWeight, W, isDummy, nodesep, edgesep, total);
    // ---- y: each rank as tall as its tallest node
    var Y = new Array(total), top = 0;
    layers.forEach(function (l) {
      var h = 0;
      l.forEach(function (v) { if (H[v] > h) h = H[v]; });
      l.forEach(function (v) { Y[v] = top + h / 2; });
      top += h + ranksep;
    });
    var minX = Infinity, maxX = -Infinity;
    for (i = 0; i < total; i++) {
      if (X[i] - W[i] / 2 < minX) minX = X[i] - W[i] / 2;
      if (X[i] + W[i] / 2 > maxX) maxX = X[i] + W[i] / 2;
    }
    if (!total) { minX = 0; maxX = 0; }
    for (i = 0; i < total; i++) X[i] -= minX;
    return {
      x: X.slice(0, n), y: Y.slice(0, n), width: maxX - minX, height: Math.max(0, top - ranksep),
      routes: chains.map(function (c) { return c.map(function (d) { return {x: X[d], y: Y[d]}; }); })
    };
  }

  // ---- ranks: longest path from the sources; a `same` edge joins its two ends ----------------
  function assignRanks(n, edges, nodes) {
    var root = [];
    for (var i = 0; i < n; i++) root.push(i);
    function find(a) { while (root[a] !== a) { root[a] = root[root[a]]; a = root[a]; } return a; }
    edges.forEach(function (e) { if (e.same) root[find(e.v)] = find(e.w); });
    var succ = [], indeg = [];
    for (i = 0; i < n; i++) { succ.push([]); indeg.push(0); }
    edges.forEach(function (e) {
      var a = find(e.v), b = find(e.w);
      if (a !== b && !e.same) { succ[a].push(b); indeg[b]++; }
    });
    var rank = new Array(n).fill(0), topo = [], ready = [];
    for (i = 0; i < n; i++) if (find(i) === i && indeg[i] === 0) ready.push(i);
    ready.sort(function (a, b) { return nodes[a].order - nodes[b].order; });
    for (var head = 0; head < ready.length; head++) {
      var v = ready[head];
      topo.push(v);
      succ[v].forEach(function (w) {
        if (rank[v] + 1 > rank[w]) rank[w] = rank[v] + 1;
        if (--indeg[w] === 0) ready.push(w);
      });
    }
    if (topo.length < n) {  // a cycle (never made by the viewer): rank what is left in order
      for (i = 0; i < n; i++) if (find(i) === i && indeg[i] > 0) { topo.push(i); indeg[i] = 0; }
    }
    // A source read only far below (an input used late) sits just above its first reader.
    var hasPred = new Array(n).fill(false);
    for (i = 0; i < n; i++) succ[i].forEach(function (w) { hasPred[w] = true; });
    for (i = topo.length - 1; i >= 0; i--) {
      v = topo[i];
      if (hasPred[v] || !succ[v].length || nodes[v].pin) continue;
      var lowest = Infinity;
      succ[v].forEach(function (w) { if (rank[w] - 1 < lowest) lowest = rank[w] - 1; });
      if (lowest > rank[v]) rank[v] = lowest;
    }
    var out = [], low = 0, high = 0;
    for (i = 0; i < n; i++) {
      out.push(rank[find(i)]);
      if (!nodes[i].pin) { low = Math.min(low, out[i]); high = Math.max(high, out[i]); }
    }
    for (i = 0; i < n; i++) {  // ports: a rank of their own above or below everything
      if (nodes[i].pin === "first") out[i] = low - 1;
      if (nodes[i].pin === "last") out[i] = high + 1;
    }
    var least = Math.min.apply(null, out.length ? out : [0]);
    return out.map(function (r) { return r - least; });
  }

  // ---- order within ranks: barycentre sweeps, keeping the order with the fewest crossings ----
  function order(layers, succ, pred, total) {
    var pos = new Float64Array(total);
    function index() { layers.forEach(function (l) { l.forEach(function (v, i) { pos[v] = i; }); }); }
    index();
    var best = layers.map(function (l) { return l.slice(); }), bestCross = crossings(layers, succ, pos);
    for (var it = 0; it < 8 && bestCross > 0; it++) {
      var down = it % 2 === 0;
      for (var k = 1; k < layers.length; k++) {
        var r = down ? k : layers.length - 1 - k;
        var l = layers[r], near = down ? pred : succ, key = new Float64Array(total);
        l.forEach(function (v) {
          var ns = near[v];
          if (!ns.length) { key[v] = pos[v]; return; }
          var s = 0;
          ns.forEach(function (u) { s += pos[u]; });
          key[v] = s / ns.length;
        });
        l.sort(function (a, b) { return key[a] - key[b] || pos[a] - pos[b]; });
        l.forEach(function (v, i) { pos[v] = i; });
      }
      var c = crossings(layers, succ, pos);
      if (c < bestCross) { bestCross = c; best = layers.map(function (l) { return l.slice(); }); }
    }
    for (var r2 = 0; r2 < layers.length; r2++) layers[r2] = best[r2];
  }

  function crossings(layers, succ, pos) {
    var count = 0;
    for (var r = 0; r + 1 < layers.length; r++) {
      var pairs = [];
      layers[r].forEach(function (v) { succ[v].forEach(function (w) { pairs.push([pos[v], pos[w]]); }); });
      pairs.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      var size = layers[r + 1].length + 1, tree = new Int32Array(size + 1), seen = 0;
      pairs.forEach(function (p) {  // inversions of the lower ends, by a Fenwick tree
        var q = p[1] + 1, below = 0;
        for (var j = q; j > 0; j -= j & -j) below += tree[j];
        count += seen - below;
        for (j = q; j <= size; j += j & -j) tree[j]++;
        seen++;
      });
    }
    return count;
  }

  function keepBridgesLeftToRight(layers, edges, flat, total) {
    var pos = new Float64Array(total), wrong = 0;
    layers.forEach(function (l) { l.forEach(function (v, i) { pos[v] = i; }); });
    flat.forEach(function (k) { if (pos[edges[k].v] > pos[edges[k].w]) wrong++; });
    if (wrong * 2 > flat.length) layers.forEach(function (l) { l.reverse(); });  // the mirror image
  }

  // ---- x: each node pulled towards its neighbours, the order kept, by isotonic regression ----
  function coordinates(layers, succ, pred, weight, predWeight, W, isDummy, nodesep, edgesep, total) {
    var X = new Float64Array(total);
    function gap(a, b) { return (W[a] + W[b]) / 2 + (isDummy[a] || isDummy[b] ? edgesep : nodesep); }
    layers.forEach(function (l) {
      var x = 0;
      l.forEach(function (v, i) { if (i) x += gap(l[i - 1], v); X[v] = x; });
      var mid = x / 2;
      l.forEach(function (v) { X[v] -= mid; });
    });
    for (var it = 0; it < 16; it++) {
      var mode = it < 12 ? it % 2 : 2;  // 0: towards predecessors, 1: successors, 2: both
      for (var k = 0; k < layers.length; k++) {
        var l = layers[mode === 1 ? layers.length - 1 - k : k];
        var want = new Float64Array(l.length), stiff = new Float64Array(l.length);
        l.forEach(function (v, i) {
          var s = 0, wsum = 0;
          if (mode !== 1) pred[v].forEach(function (u, j) { s += X[u] * predWeight[v][j]; wsum += predWeight[v][j]; });
          if (mode !== 0) succ[v].forEach(function (u, j) { s += X[u] * weight[v][j]; wsum += weight[v][j]; });
          want[i] = wsum ? s / wsum : X[v];
          stiff[i] = wsum || 0.05;
        });
        place(l, want, stiff, gap, X);
      }
    }
    return X;
  }

  // min sum stiff_i (x_i - want_i)^2  with  x_{i+1} - x_i >= gap(i, i+1): pool adjacent violators
  function place(l, want, stiff, gap, X) {
    var m = l.length, offset = new Float64Array(m);
    for (var i = 1; i < m; i++) offset[i] = offset[i - 1] + gap(l[i - 1], l[i]);
    var val = [], wt = [], len = [];
    for (i = 0; i < m; i++) {
      var v = want[i] - offset[i], w = stiff[i], c = 1;
      while (val.length && val[val.length - 1] > v) {
        var pv = val.pop(), pw = wt.pop(), pc = len.pop();
        v = (v * w + pv * pw) / (w + pw); w += pw; c += pc;
      }
      val.push(v); wt.push(w); len.push(c);
    }
    var at = 0;
    for (var b = 0; b < val.length; b++) for (var j = 0; j < len[b]; j++, at++) X[l[at]] = val[b] + offset[at];
  }

  return {layout: layout};
})();
