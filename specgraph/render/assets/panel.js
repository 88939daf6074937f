/* specgraph viewer: the side panel — the selected node or block, or the model; the errors. */
"use strict";
(function () {
  var SG = window.SG, G;

  function src(refs) {
    return (refs || []).filter(function (r) { return r !== null && r !== undefined; }).map(function (r) {
      var s = G.model.sources[r];
      if (!s) return "";
      var lines = s.lines.map(function (t, i) { return String(s.line + i).padStart(5) + " | " + t; }).join("\n");
      return '<div class="sg-src"><div class="sg-where">' + SG.esc(s.file + ":" + s.line) + "</div><pre>" + SG.esc(lines) + "</pre></div>";
    }).join("");
  }
  function counts(d) {
    var rows = [["parameters", "count"], ["MACs", "macs"], ["parameter memory", "param_bytes"], ["activations", "activations"]];
    return '<dl class="sg-counts">' + rows.filter(function (r) { return d[r[1]] !== undefined; }).map(function (r) {
      return "<dt>" + r[0] + '</dt><dd data-field="' + r[1] + '">' + SG.esc(d[r[1]] || "0") + "</dd>";
    }).join("") + "</dl>";
  }
  function edgesOf(e, inputs) {
    return G.edges.filter(function (x) { return (inputs ? x.head : x.tail) === e; }).map(function (x) {
      var other = inputs ? x.tail : x.head;
      return "<li>" + SG.esc((inputs ? other.data.id : x.port) + (inputs && x.many ? "." + x.port : "")) +
        (inputs ? " → " + SG.esc(typeOf(x)) : " → " + SG.esc(other.data.id)) + (x.sizeOnly ? " (size only)" : "") + "</li>";
    }).join("");
  }
  function typeOf(x) {
    var out = (x.tail.data.out || []).filter(function (o) { return o[0] === x.port; })[0];
    return out ? out[2] : "";
  }

  SG.panelHtml = function (graph, selected) {
    G = graph;
    var m = G.model, e = selected && G.byKey.get(selected), html = "";
    if (!e) {
      html += "<h2>" + SG.esc(m.name) + "</h2>" + counts(m.totals || {});
      (m.totals && m.totals.memory || []).forEach(function (l) { html += '<p class="sg-note">' + SG.esc(l) + "</p>"; });
      if (m.doc) html += '<p class="sg-doc">' + SG.esc(m.doc) + "</p>";
      html += '<p class="sg-note">Click a block to open or close it, a node to see it here. Keys: / search, f fit, ' +
        "e expand all, c collapse all, + − zoom, arrows pan, t theme.</p>";
    } else if (e.isGroup) {
      var d = e.data;
      html += '<h2 data-field="path">' + SG.esc(d.id) + "</h2>";
      html += '<p><b data-field="kind">' + SG.esc(e.kind === "scan" ? "scan " + d.label : e.kind === "run" ?
        e.copies.length + " × block " + d.name : d.kind === "block" ? "block " + d.name : d.name) + "</b></p>";
      if (e.kind === "run") html += '<p class="sg-note">' + SG.esc(e.copies[0].id + " … " + e.copies[e.copies.length - 1].id +
        ": blocks of one structure; open to draw each") + "</p>";
      if (d.params && d.params.length && e.kind !== "scan") html += table(d.params);
      if (d.in && e.kind !== "scan") html += "<h3>inputs</h3><ul>" + d.in.map(function (t) { return "<li>" + SG.esc(t) + "</li>"; }).join("") + "</ul>";
      if (e.kind !== "scan") html += "<h3>outputs</h3><ul>" + d.out.map(function (o) { return "<li>" + SG.esc(o[0] + ": " + o[1]) + "</li>"; }).join("") + "</ul>";
      if (e.kind === "scan") html += table(d.params) + "<h3>inputs</h3><ul>" + edgesOf(e, true) + "</ul><h3>outputs</h3><ul>" +
        d.out.map(function (o) { return "<li>" + SG.esc(o[0] + ": " + o[2]) + "</li>"; }).join("") + "</ul>";
      html += counts(d) + (d.doc ? '<p class="sg-doc">' + SG.esc(d.doc) + "</p>" : "") + "<h3>source</h3>" + src([].concat(d.src));
    } else {
      d = e.data;
      html += '<h2 data-field="path">' + SG.esc(d.id) + "</h2>";
      if (e.kind === "op") html += '<p><b data-field="op">' + SG.esc(d.op) + "</b> " + SG.esc(d.label || "") + "</p>" + table(d.params);
      else html += "<p><b>" + SG.esc(e.kind === "error" ? d.op + " (failed)" : e.kind) + "</b></p>";
      if (d.fused) html += '<p class="sg-note">built fused: <span data-field="fused">' + SG.esc(d.fused) + "</span> (one kernel " +
        "computes this node with the others of its gather-dot)</p>";
      if (e.kind === "error") html += (d.errors || []).map(function (i) { return errorHtml(m.errors[i], i); }).join("");
      if (e.kind !== "input") html += "<h3>inputs</h3><ul>" + edgesOf(e, true) + "</ul>";
      if (d.out) html += "<h3>outputs</h3><ul>" + d.out.map(function (o) { return "<li>" + SG.esc(o[0] + ": " + o[2]) + "</li>"; }).join("") + "</ul>";
      if (e.kind === "op" || e.kind === "input") html += "<h3>read by</h3><ul>" + edgesOf(e, false) + "</ul>";
      html += counts(d) + (d.doc ? '<p class="sg-doc">' + SG.esc(d.doc) + "</p>" : "");
      if (d.src !== null && d.src !== undefined) html += "<h3>source</h3>" + src([d.src]);
    }
    var errs = m.errors || [];
    if (errs.length) html += '<h3 class="sg-errs">' + errs.length + " problem" + (errs.length === 1 ? "" : "s") + "</h3>" +
      errs.map(errorHtml).join("");
    return html;
  };
  function table(params) {
    if (!params || !params.length) return "";
    return '<table class="sg-params">' + params.map(function (p) {
      return '<tr class="' + (p[2] ? "default" : "") + '"><td>' + SG.esc(p[0]) + "</td><td>" + SG.esc(p[1]) + "</td></tr>";
    }).join("") + "</table>";
  }
  function errorHtml(x, i) {
    var where = x.where ? '<div class="sg-where">' + SG.esc(x.where) + "</div>" : "";
    var s = x.src !== null && x.src !== undefined ? G.model.sources[x.src] : null;
    var caret = s ? "<pre>" + SG.esc(String(s.line).padStart(5) + " | " + s.lines[0] + "\n      | " +
      " ".repeat(Math.max(0, (x.col || 1) - 1)) + "^") + "</pre>" : "";
    return '<div class="sg-error ' + x.severity + '" data-error="' + i + '"><b>' + x.severity + "[" + SG.esc(x.code) + "]</b>" +
      (x.path ? " node '" + SG.esc(x.path) + "'" : "") + ": " + SG.esc(x.message) + where +
      (x.details || []).map(function (t) { return '<div class="sg-detail">' + SG.esc(t) + "</div>"; }).join("") + caret +
      (x.hint ? '<div class="sg-hint">hint: ' + SG.esc(x.hint) + "</div>" : "") + "</div>";
  }

})();
