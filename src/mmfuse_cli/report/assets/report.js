/* mmfuse report page: reads the JSON in #report-data and builds every section. No network, no libraries.
   Text from the data always goes through textContent or attributes, never innerHTML. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var app = document.getElementById("app");
  var compare = data.kind === "compare";
  var metrics = data.metrics;
  var rows = data.rows;
  var COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a"];
  var ROLE_LABEL = { a: "source a", b: "source b", fused: "fused", restored_a: "restored a", restored_b: "restored b" };

  function el(tag, attrs) {
    var node = document.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "onclick") node.addEventListener("click", attrs[key]);
      else if (key === "onchange") node.addEventListener("change", attrs[key]);
      else if (key === "oninput") node.addEventListener("input", attrs[key]);
      else if (attrs[key] !== null && attrs[key] !== undefined && attrs[key] !== false) node.setAttribute(key, attrs[key]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "\u2013";
    var a = Math.abs(v);
    return a >= 1000 ? v.toFixed(1) : a >= 100 ? v.toFixed(2) : v.toFixed(4);
  }
  function arrow(m) { return m.higher ? " \u2191" : " \u2193"; }
  function option(value, label, selected) { return el("option", { value: value, selected: selected ? "selected" : null, text: label }); }
  function section(id, title) {
    var s = el("section", { id: id }, el("h2", { text: title }));
    app.appendChild(s);
    document.getElementById("nav").appendChild(el("a", { href: "#" + id, text: title }));
    return s;
  }
  function label(r) { return compare ? r.item + " \u00b7 " + r.method : r.item; }
  function color(method) { var i = data.methods.indexOf(method); return COLORS[(i < 0 ? 0 : i) % COLORS.length]; }

  function thumb(img, role, big) {
    var box = el("span", { class: "thumb" });
    if (img === undefined) return box;
    if (img === null) { box.appendChild(el("span", { class: "missing", text: ROLE_LABEL[role] + " missing" })); return box; }
    var what = img.planes ? ROLE_LABEL[role] + ", volume: " + img.planes : ROLE_LABEL[role] + ", full size";
    var link = el("a", { href: img.full, target: "_blank", title: img.name + " (" + what + ")" });
    if (img.planes) box.classList.add("planes");
    if (img.thumb) link.appendChild(el("img", { src: img.thumb, alt: ROLE_LABEL[role] + " " + img.name + (img.planes ? " (" + img.planes + ")" : ""), loading: "lazy", decoding: "async" }));
    else link.appendChild(el("span", { class: "missing", text: "no preview (cannot decode)" }));
    box.appendChild(link);
    if (big) box.classList.add("big");
    return box;
  }

  /* --- overview: counts, notes, failures --- */
  var over = section("overview", "Overview");
  var counts = el("p", { class: "counts" });
  Object.keys(data.counts).forEach(function (st) {
    counts.appendChild(el("span", {}, el("b", { class: "st-" + st, text: String(data.counts[st]) }), " " + st));
  });
  if (!rows.length) counts.appendChild(el("span", { text: "no pairs to show yet" }));
  over.appendChild(counts);
  if (compare) over.appendChild(el("p", { text: "methods: " + data.methods.join(", ") }));
  if (data.source) over.appendChild(el("p", { class: "from", text: "from " + data.source }));
  if (data.notes.length) over.appendChild(el("ul", { class: "notes" }, ...data.notes.map(function (n) { return el("li", { text: n }); })));
  if (data.failures.length) {
    var fs = section("failures", "Failures (" + data.failures.length + ")");
    var list = el("ul", { class: "failures" });
    data.failures.forEach(function (f) {
      list.appendChild(el("li", {}, el("b", { text: f.item + (f.method ? " \u00b7 " + f.method : "") }), " ", el("span", { class: "reason", text: f.reason || "(no reason given)" })));
    });
    fs.appendChild(list);
  }

  /* --- comparison summary: mean +- std per method, best bold; bars per metric --- */
  if (compare && metrics.length) {
    var cs = section("summary", "Methods: mean \u00b1 std");
    var st = el("table", { id: "summary-table" });
    var head = el("tr", {}, el("th", { text: "method" }));
    metrics.forEach(function (m) { head.appendChild(el("th", { class: "num", text: m.name + arrow(m) })); });
    st.appendChild(el("thead", {}, head));
    var body = el("tbody");
    data.methods.forEach(function (name) {
      var tr = el("tr", {}, el("td", {}, el("b", { style: "color:" + color(name), text: name })));
      metrics.forEach(function (m) {
        var s = data.summary[m.name][name];
        var best = data.best[m.name] === name;
        tr.appendChild(el("td", { class: "num" + (best ? " best" : ""), text: s ? fmt(s.mean) + " \u00b1 " + fmt(s.std) + " (" + s.n + ")" : "\u2013" }));
      });
      body.appendChild(tr);
    });
    st.appendChild(body);
    cs.appendChild(el("div", { class: "scroll" }, st));
    var bars = el("div", { class: "hists" });
    metrics.forEach(function (m) { bars.appendChild(barChart(m)); });
    cs.appendChild(el("h2", { text: "Bars per metric" }));
    cs.appendChild(bars);
  }
  function barChart(m) {
    var W = 240, RH = 18, H = data.methods.length * RH + 6, L = 90;
    var means = data.methods.map(function (n) { var s = data.summary[m.name][n]; return s ? s.mean : null; });
    var vals = means.filter(function (v) { return v !== null; });
    var lo = Math.min(0, Math.min.apply(null, vals.concat([0]))), hi = Math.max(0, Math.max.apply(null, vals.concat([0])));
    var span = hi - lo || 1;
    var g = svg("svg", { width: W + L + 60, height: H, role: "img" });
    data.methods.forEach(function (n, i) {
      var v = means[i], y = 3 + i * RH;
      var t = svg("text", { x: L - 4, y: y + 12, "text-anchor": "end", "font-size": 11 }); t.textContent = n; g.appendChild(t);
      if (v === null) return;
      var x0 = L + (0 - lo) / span * W, x1 = L + (v - lo) / span * W;
      var rect = svg("rect", { x: Math.min(x0, x1), y: y, width: Math.max(1, Math.abs(x1 - x0)), height: RH - 5, fill: color(n) });
      var tip = svg("title", {}); tip.textContent = n + ": " + fmt(v); rect.appendChild(tip); g.appendChild(rect);
      var vt = svg("text", { x: Math.max(x0, x1) + 3, y: y + 11, "font-size": 10 }); vt.textContent = fmt(v);
      if (data.best[m.name] === n) vt.setAttribute("font-weight", "bold");
      g.appendChild(vt);
    });
    return el("div", { class: "hist" }, el("div", { text: m.name + arrow(m) }), g);
  }

  /* --- best / worst N --- */
  if (metrics.length) {
    var bw = section("bestworst", "Best and worst");
    var mSel = el("select", { id: "bw-metric", onchange: drawBW });
    metrics.forEach(function (m, i) { mSel.appendChild(option(m.name, m.name + arrow(m), i === 0)); });
    var nSel = el("select", { id: "bw-n", onchange: drawBW });
    [3, 5, 10, 20].forEach(function (n) { nSel.appendChild(option(n, String(n), n === 5)); });
    var meSel = el("select", { id: "bw-method", onchange: drawBW });
    meSel.appendChild(option("", "all methods", true));
    data.methods.forEach(function (n) { meSel.appendChild(option(n, n, false)); });
    var ctl = el("div", { class: "controls" }, "metric ", mSel, " N ", nSel, compare ? meSel : null);
    var out = el("div", { class: "bw" });
    bw.appendChild(ctl); bw.appendChild(out);
    drawBW();
  }
  function drawBW() {
    var name = document.getElementById("bw-metric").value, n = +document.getElementById("bw-n").value;
    var method = compare ? document.getElementById("bw-method").value : "";
    var order = data.rank[name].filter(function (i) { return !method || rows[i].method === method; });
    var out = document.querySelector("#bestworst .bw");
    out.textContent = "";
    [["best", order.slice(0, n)], ["worst", order.slice().reverse().slice(0, n)]].forEach(function (part) {
      var cards = el("div", { class: "cards" });
      part[1].forEach(function (i) {
        var r = rows[i];
        cards.appendChild(el("div", { class: "card", onclick: function () { openViewer(i, part[1]); } },
          thumb(r.images.fused, "fused"), el("div", { class: "name", text: label(r) }), el("b", { text: fmt(r.values[name]) })));
      });
      out.appendChild(el("div", {}, el("h2", { text: part[0] + " " + part[1].length + " by " + name }), cards));
    });
  }

  /* --- histograms --- */
  if (metrics.length && rows.length) {
    var hs = section("histograms", "Histograms");
    if (compare) {
      var lg = el("div", { class: "legend" });
      data.methods.forEach(function (n) { lg.appendChild(el("span", {}, el("i", { style: "background:" + color(n) }), n)); });
      hs.appendChild(lg);
    }
    var hw = el("div", { class: "hists" });
    metrics.forEach(function (m) { hw.appendChild(histChart(m)); });
    hs.appendChild(hw);
  }
  function histChart(m) {
    var h = data.histograms[m.name], W = 220, H = 80;
    var g = svg("svg", { width: W, height: H + 14, role: "img" });
    var box = el("div", { class: "hist" }, el("div", { text: m.name + arrow(m) }), g);
    if (!h.edges.length) { box.appendChild(el("div", { class: "from", text: "no values" })); return box; }
    var methods = Object.keys(h.counts), bins = h.edges.length - 1, max = 1;
    methods.forEach(function (k) { h.counts[k].forEach(function (c) { max = Math.max(max, c); }); });
    var bw = W / bins, sub = bw / methods.length;
    methods.forEach(function (k, j) {
      h.counts[k].forEach(function (c, i) {
        var bh = c / max * H;
        var rect = svg("rect", { x: i * bw + j * sub + 0.5, y: H - bh, width: Math.max(1, sub - 1), height: bh, fill: compare ? color(k) : "#1f6feb" });
        var tip = svg("title", {}); tip.textContent = (k ? k + ": " : "") + c + " in [" + fmt(h.edges[i]) + ", " + fmt(h.edges[i + 1]) + "]";
        rect.appendChild(tip); g.appendChild(rect);
      });
    });
    var lo = svg("text", { x: 0, y: H + 12, "font-size": 10 }); lo.textContent = fmt(h.edges[0]); g.appendChild(lo);
    var hi = svg("text", { x: W, y: H + 12, "font-size": 10, "text-anchor": "end" }); hi.textContent = fmt(h.edges[bins]); g.appendChild(hi);
    return box;
  }

  /* --- the table: filter, sort, paginate --- */
  var state = { sort: null, dir: 1, page: 0, size: 50, text: "", status: "", method: "" };
  var hasRestored = rows.some(function (r) { return r.images.restored_a || r.images.restored_b; });
  var ts = section("pairs", compare ? "All rows" : "Pairs");
  var search = el("input", { type: "search", id: "filter", placeholder: "filter: name, reason, degradation", oninput: function () { state.text = this.value.toLowerCase(); state.page = 0; drawTable(); } });
  var stSel = el("select", { id: "status-filter", onchange: function () { state.status = this.value; state.page = 0; drawTable(); } });
  stSel.appendChild(option("", "every status", true));
  Object.keys(data.counts).forEach(function (s) { stSel.appendChild(option(s, s, false)); });
  var meFilter = el("select", { id: "method-filter", onchange: function () { state.method = this.value; state.page = 0; drawTable(); } });
  meFilter.appendChild(option("", "every method", true));
  data.methods.forEach(function (n) { meFilter.appendChild(option(n, n, false)); });
  var sizeSel = el("select", { id: "page-size", onchange: function () { state.size = +this.value; state.page = 0; drawTable(); } });
  [25, 50, 100, 200].forEach(function (n) { sizeSel.appendChild(option(n, n + " per page", n === 50)); });
  ts.appendChild(el("div", { class: "controls" }, search, stSel, compare ? meFilter : null, sizeSel, el("span", { id: "shown" })));
  var table = el("table", { id: "pairs-table" });
  var cols = [{ key: "item", label: "item" }];
  if (compare) cols.push({ key: "method", label: "method" });
  cols.push({ key: "status", label: "status" });
  ["a", "b", "fused"].concat(hasRestored ? ["restored_a", "restored_b"] : []).forEach(function (r) { cols.push({ role: r, label: ROLE_LABEL[r] }); });
  if (!compare) { cols.push({ deg: "a", label: "a degradation" }); cols.push({ deg: "b", label: "b degradation" }); }
  metrics.forEach(function (m) { cols.push({ key: m.name, metric: m, label: m.name + arrow(m), num: true }); });
  cols.push({ key: "seconds", label: "seconds", num: true });
  var hrow = el("tr");
  cols.forEach(function (c) {
    var sortable = !!c.key;
    var th = el("th", { class: (c.num ? "num " : "") + (sortable ? "sortable" : ""), "data-key": c.key || null, text: c.label });
    if (sortable) th.addEventListener("click", function () {
      if (state.sort === c.key) state.dir = -state.dir; else { state.sort = c.key; state.dir = c.metric && c.metric.higher ? -1 : 1; }
      state.page = 0; drawTable();
    });
    hrow.appendChild(th);
  });
  table.appendChild(el("thead", {}, hrow));
  var tbody = el("tbody");
  table.appendChild(tbody);
  ts.appendChild(el("div", { class: "scroll" }, table));
  var pager = el("div", { class: "pager" });
  ts.appendChild(pager);

  function value(r, key) {
    if (key === "item" || key === "method" || key === "status") return r[key];
    if (key === "seconds") return r.seconds;
    return r.values[key];
  }
  function filtered() {
    var idx = [];
    rows.forEach(function (r, i) {
      if (state.status && r.status !== state.status) return;
      if (state.method && r.method !== state.method) return;
      if (state.text) {
        var hay = (r.item + " " + r.method + " " + r.reason + " " + r.degradation.a + " " + r.degradation.b).toLowerCase();
        if (hay.indexOf(state.text) < 0) return;
      }
      idx.push(i);
    });
    if (state.sort) {
      var key = state.sort, dir = state.dir;
      idx.sort(function (i, j) {
        var x = value(rows[i], key), y = value(rows[j], key);
        if (x === null || x === undefined) return (y === null || y === undefined) ? i - j : 1;
        if (y === null || y === undefined) return -1;
        if (x < y) return -dir;
        if (x > y) return dir;
        return i - j;
      });
    }
    return idx;
  }
  function drawTable() {
    var idx = filtered(), pages = Math.max(1, Math.ceil(idx.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    var view = idx.slice(state.page * state.size, (state.page + 1) * state.size);
    tbody.textContent = "";
    view.forEach(function (i) {
      var r = rows[i], tr = el("tr", { "data-index": i });
      cols.forEach(function (c) {
        if (c.key === "item") tr.appendChild(el("td", { class: "item" }, el("a", { href: "#", text: r.item, onclick: function (e) { e.preventDefault(); openViewer(i, idx); } })));
        else if (c.key === "method") tr.appendChild(el("td", { text: r.method }));
        else if (c.key === "status") tr.appendChild(el("td", { title: r.reason }, el("span", { class: "badge st-" + r.status, text: r.status })));
        else if (c.role) tr.appendChild(el("td", {}, thumb(r.images[c.role], c.role)));
        else if (c.deg) tr.appendChild(el("td", { class: "deg", text: r.degradation[c.deg] }));
        else tr.appendChild(el("td", { class: "num", text: fmt(value(r, c.key)) }));
      });
      tbody.appendChild(tr);
    });
    table.querySelectorAll("th").forEach(function (th) {
      th.classList.remove("sorted-asc", "sorted-desc");
      if (state.sort && th.getAttribute("data-key") === state.sort) th.classList.add(state.dir > 0 ? "sorted-asc" : "sorted-desc");
    });
    document.getElementById("shown").textContent = idx.length + " of " + rows.length + " row(s)";
    pager.textContent = "";
    pager.appendChild(el("button", { id: "prev-page", disabled: state.page === 0 ? "disabled" : null, text: "\u2039 previous", onclick: function () { state.page--; drawTable(); } }));
    pager.appendChild(el("span", { id: "page-of", text: "page " + (state.page + 1) + " of " + pages }));
    pager.appendChild(el("button", { id: "next-page", disabled: state.page >= pages - 1 ? "disabled" : null, text: "next \u203a", onclick: function () { state.page++; drawTable(); } }));
  }
  drawTable();

  /* --- comparison: each pair's methods side by side --- */
  if (compare) {
    var ps = section("sidebyside", "Side by side");
    var items = [], byItem = {};
    rows.forEach(function (r, i) { if (!byItem[r.item]) { byItem[r.item] = []; items.push(r.item); } byItem[r.item].push(i); });
    var sbs = { page: 0, size: 20 };
    var holder = el("div"), sp = el("div", { class: "pager" });
    ps.appendChild(holder); ps.appendChild(sp);
    var drawSBS = function () {
      holder.textContent = "";
      var pages = Math.max(1, Math.ceil(items.length / sbs.size));
      items.slice(sbs.page * sbs.size, (sbs.page + 1) * sbs.size).forEach(function (item) {
        var ids = byItem[item], first = rows[ids[0]];
        var line = el("div", { class: "row" });
        ["a", "b"].forEach(function (s) {
          var src = ids.map(function (i) { return rows[i].images[s]; }).filter(function (x) { return x; })[0];
          line.appendChild(el("figure", {}, thumb(src === undefined ? first.images[s] : src, s), el("figcaption", { text: ROLE_LABEL[s] })));
        });
        ids.forEach(function (i) {
          var r = rows[i], vals = metrics.map(function (m) { return m.name + " " + fmt(r.values[m.name]); }).join(", ");
          line.appendChild(el("figure", { onclick: function () { openViewer(i, ids); } }, thumb(r.images.fused, "fused"),
            el("figcaption", {}, el("b", { style: "color:" + color(r.method), text: r.method }), " ", el("span", { class: "badge st-" + r.status, text: r.status }), el("div", { class: "from", text: r.status === "ok" ? vals : r.reason }))));
        });
        holder.appendChild(el("div", { class: "pair" }, el("b", { text: item }), line));
      });
      sp.textContent = "";
      sp.appendChild(el("button", { disabled: sbs.page === 0 ? "disabled" : null, text: "\u2039 previous", onclick: function () { sbs.page--; drawSBS(); } }));
      sp.appendChild(el("span", { text: "pairs page " + (sbs.page + 1) + " of " + pages }));
      sp.appendChild(el("button", { disabled: sbs.page >= pages - 1 ? "disabled" : null, text: "next \u203a", onclick: function () { sbs.page++; drawSBS(); } }));
    };
    drawSBS();
  }

  /* --- viewer: full images, before/after slider or toggle, details --- */
  var viewer = document.getElementById("viewer");
  var current = { index: -1, list: [] };
  function closeViewer() { viewer.hidden = true; viewer.textContent = ""; }
  viewer.addEventListener("click", function (e) { if (e.target === viewer) closeViewer(); });
  document.addEventListener("keydown", function (e) {
    if (viewer.hidden) return;
    if (e.key === "Escape") closeViewer();
    if (e.key === "ArrowRight") step(1);
    if (e.key === "ArrowLeft") step(-1);
  });
  function step(d) {
    var pos = current.list.indexOf(current.index) + d;
    if (pos >= 0 && pos < current.list.length) openViewer(current.list[pos], current.list);
  }
  function openViewer(i, list) {
    current = { index: i, list: list || [i] };
    var r = rows[i];
    viewer.textContent = "";
    var box = el("div", { class: "box" });
    box.appendChild(el("div", { class: "top" }, el("h3", { text: label(r) }),
      el("span", {}, el("button", { text: "\u2039", title: "previous (\u2190)", onclick: function () { step(-1); } }), " ",
        el("button", { text: "\u203a", title: "next (\u2192)", onclick: function () { step(1); } }), " ",
        el("button", { id: "viewer-close", text: "close", onclick: closeViewer }))));
    box.appendChild(el("p", {}, el("span", { class: "badge st-" + r.status, text: r.status }), " ", r.reason));
    var others = {};
    Object.keys(r.images).forEach(function (k) { if (k !== "fused" && r.images[k]) others[k] = r.images[k]; });
    if (compare) rows.forEach(function (o) { if (o.item === r.item && o !== r && o.images.fused) others["fused:" + o.method] = o.images.fused; });
    var fused = r.images.fused;
    if (fused && Object.keys(others).length) box.appendChild(slider(fused, others));
    else if (fused) box.appendChild(el("div", { class: "cmp" }, el("img", { src: fused.full, alt: "fused" })));
    else box.appendChild(el("p", { class: "missing", text: "no fused image" }));
    var det = el("div", { class: "details" });
    ["a", "b"].forEach(function (s) {
      var dl = el("dl", {}, el("dt", {}, el("b", { text: ROLE_LABEL[s] })));
      if (r.images[s]) dl.appendChild(el("dd", {}, el("a", { href: r.images[s].full, target: "_blank", text: r.images[s].name })));
      r.sources[s].forEach(function (d) {
        dl.appendChild(el("dt", { text: d.label }));
        dl.appendChild(el("dd", {}, d.value, d.from ? el("span", { class: "from", text: " (" + d.from + ")" }) : null));
      });
      det.appendChild(dl);
    });
    var md = el("dl", {}, el("dt", {}, el("b", { text: "metrics" })));
    metrics.forEach(function (m) { md.appendChild(el("dd", { text: m.name + arrow(m) + " " + fmt(r.values[m.name]) })); });
    if (r.seconds !== null) md.appendChild(el("dd", { text: "seconds " + fmt(r.seconds) }));
    det.appendChild(md);
    box.appendChild(det);
    viewer.appendChild(box);
    viewer.hidden = false;
  }
  function slider(fused, others) {
    var wrap = el("div");
    var keys = Object.keys(others);
    var sel = el("select", { id: "compare-with" });
    keys.forEach(function (k, n) { sel.appendChild(option(k, k.indexOf("fused:") === 0 ? k.replace(":", " ") : ROLE_LABEL[k], n === 0)); });
    var range = el("input", { type: "range", id: "split", min: 0, max: 100, value: 50 });
    var base = el("img", { src: others[keys[0]].full, alt: "before" });
    var over = el("img", { class: "over", src: fused.full, alt: "fused" });
    var line = el("div", { class: "line" });
    var tagL = el("span", { class: "tag", style: "left:6px" }), tagR = el("span", { class: "tag", style: "right:6px", text: "fused" });
    var mode = el("button", { id: "toggle", text: "toggle" });
    var showFused = true, sliding = true;
    function draw() {
      var x = +range.value;
      tagL.textContent = sel.options[sel.selectedIndex].text;
      if (sliding) { over.style.clipPath = "inset(0 0 0 " + x + "%)"; over.style.visibility = "visible"; line.style.left = x + "%"; line.hidden = false; }
      else { over.style.clipPath = "none"; over.style.visibility = showFused ? "visible" : "hidden"; line.hidden = true; tagR.textContent = showFused ? "fused" : ""; }
    }
    sel.addEventListener("change", function () { base.src = others[sel.value].full; draw(); });
    range.addEventListener("input", function () { sliding = true; tagR.textContent = "fused"; draw(); });
    mode.addEventListener("click", function () { if (sliding) { sliding = false; showFused = false; } else showFused = !showFused; draw(); });
    wrap.appendChild(el("div", { class: "controls" }, "before ", sel, " slide ", range, mode, el("span", { class: "from", text: "drag to compare; toggle flips between the two" })));
    wrap.appendChild(el("div", { class: "cmp" }, base, over, line, tagL, tagR));
    draw();
    return wrap;
  }
})();
