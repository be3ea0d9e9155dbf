/* dis-eval pages: SVG plots, the jobs page's polling and the upload form. Plain JavaScript, no
   libraries; each page calls one DisEval.*Page() function. Data comes from a
   <script type="application/json"> block the server rendered, or from /api. */
"use strict";
var DisEval = (function () {
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22"];

  function pageData(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]); }
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function svg(container, width, height, label) {
    container.textContent = "";
    var s = el("svg", {viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
                       "aria-label": label, preserveAspectRatio: "xMidYMid meet"}, container);
    s.style.maxWidth = width + "px";
    return s;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(3)));
  }

  /* "Nice" tick values covering [lo, hi]. */
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { return [lo]; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
    out.step = step;
    return out;
  }

  /* A tick label with as many decimals as the tick spacing needs (1.705, 1.71, 1.715 stay apart). */
  function fmtTick(t, step) {
    if (!step || Math.abs(t) >= 1e5 || (t !== 0 && Math.abs(t) < 1e-3)) return fmt(t);
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return t.toFixed(Math.min(decimals, 6));
  }

  function legendWidth(labels) {
    return 40 + 7.2 * Math.max.apply(null, labels.map(function (l) { return String(l).length; }).concat([4]));
  }

  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (typeof v === "number" && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (lo === Infinity) return [0, 1];
    if (lo === hi) { var pad = Math.abs(lo) * 0.1 || 0.5; return [lo - pad, hi + pad]; }
    return [lo, hi];
  }

  /* A linear (or log) scale with its ticks. */
  function scale(domain, range, log) {
    var d0 = log ? Math.log(domain[0]) : domain[0], d1 = log ? Math.log(domain[1]) : domain[1];
    var f = function (v) {
      var x = log ? Math.log(v) : v;
      return range[0] + (x - d0) / ((d1 - d0) || 1) * (range[1] - range[0]);
    };
    f.ticks = function (n) {
      if (!log) return ticks(domain[0], domain[1], n);
      var out = [];
      for (var e = Math.floor(Math.log2(domain[0])); e <= Math.ceil(Math.log2(domain[1])); e++) {
        var t = Math.pow(2, e);
        if (t >= domain[0] * 0.999 && t <= domain[1] * 1.001) out.push(t);
      }
      return out.length ? out : [domain[0], domain[1]];
    };
    return f;
  }

  /* Axes with ticks and labels for a plot area [x0, x1] x [y0 (top), y1 (bottom)]. */
  function axes(s, box, xs, ys, xlabel, ylabel, xTickValues) {
    var g = el("g", {"class": "axes"}, s);
    el("line", {x1: box.x0, y1: box.y1, x2: box.x1, y2: box.y1}, g);
    el("line", {x1: box.x0, y1: box.y0, x2: box.x0, y2: box.y1}, g);
    var xt = xTickValues || xs.ticks(6);
    xt.forEach(function (t) {
      var x = xs(t);
      el("line", {x1: x, y1: box.y1, x2: x, y2: box.y1 + 5}, g);
      el("text", {x: x, y: box.y1 + 18, "text-anchor": "middle", "class": "tick"}, g, fmtTick(t, xt.step));
    });
    var yt = ys.ticks(5);
    var widest = Math.max.apply(null, yt.map(function (t) { return fmtTick(t, yt.step).length; }));
    yt.forEach(function (t) {
      var y = ys(t);
      el("line", {x1: box.x0 - 5, y1: y, x2: box.x0, y2: y}, g);
      el("line", {x1: box.x0, y1: y, x2: box.x1, y2: y, "class": "grid"}, g);
      el("text", {x: box.x0 - 8, y: y + 4, "text-anchor": "end", "class": "tick"}, g, fmtTick(t, yt.step));
    });
    el("text", {x: (box.x0 + box.x1) / 2, y: box.y1 + 38, "text-anchor": "middle", "class": "label"}, g, xlabel);
    el("text", {x: 0, y: 0, "text-anchor": "middle", "class": "label",
                transform: "translate(" + (box.x0 - 18 - 6.5 * widest) + "," + ((box.y0 + box.y1) / 2) + ") rotate(-90)"}, g, ylabel);
  }

  function legend(s, x, y, entries) {
    var g = el("g", {"class": "legend"}, s);
    entries.forEach(function (e, i) {
      el("rect", {x: x, y: y + i * 18 - 9, width: 12, height: 12, fill: e.colour}, g);
      el("text", {x: x + 18, y: y + i * 18 + 1}, g, e.label);
    });
  }

  function colourMap(values) {
    var uniq = Array.from(new Set(values.map(function (v) { return String(v); }))).sort();
    var m = {};
    uniq.forEach(function (v, i) { m[v] = PALETTE[i % PALETTE.length]; });
    return m;
  }

  // ---- parallel coordinates and score against a setting --------------------------------------------

  function parallelPlot(container, data, colourBy) {
    var dims = data.keys.map(function (k) { return {name: k, get: function (r) { return r.config[k]; }}; })
      .concat(data.scores.map(function (s) { return {name: s, score: true, get: function (r) { return r.scores[s]; }}; }));
    var colourValues = data.runs.map(function (r) { return colourBy === "seed" ? r.seed : r.config[colourBy]; });
    var colours = colourMap(colourValues);
    var lw = legendWidth(Object.keys(colours).map(function (k) { return colourBy + " " + k; }));
    var plotW = Math.max(560, 150 * (dims.length - 1));
    var W = plotW + 140 + lw, H = 380, top = 40, bottom = 330, left = 90, right = left + plotW;
    var s = svg(container, W, H, "parallel coordinates: one line per run");
    var step = dims.length > 1 ? (right - left) / (dims.length - 1) : 0;
    dims.forEach(function (d, i) {
      d.x = left + i * step;
      var vals = data.runs.map(d.get).filter(function (v) { return v !== null && v !== undefined; });
      d.numeric = vals.every(function (v) { return typeof v === "number"; });
      if (d.numeric) {
        var e = extent(vals);
        d.scale = scale(e, [bottom, top]);
        d.ticks = d.scale.ticks(4);
        d.pos = function (v) { return (v === null || v === undefined) ? null : d.scale(v); };
      } else {
        var cats = Array.from(new Set(vals.map(String))).sort();
        var y = function (v) { return cats.length > 1 ? bottom - cats.indexOf(String(v)) * (bottom - top) / (cats.length - 1) : (top + bottom) / 2; };
        d.ticks = cats;
        d.pos = function (v) { return (v === null || v === undefined) ? null : y(v); };
        d.tickPos = y;
      }
    });
    var lines = el("g", {"class": "pc-lines"}, s);
    data.runs.forEach(function (r) {
      var pts = [];
      dims.forEach(function (d) { var y = d.pos(d.get(r)); if (y !== null) pts.push(d.x + "," + y); });
      var key = String(colourBy === "seed" ? r.seed : r.config[colourBy]);
      var a = el("a", {href: r.url}, lines);
      var line = el("polyline", {points: pts.join(" "), stroke: colours[key], "class": "pc-line"}, a);
      el("title", {}, line, r.id);
    });
    dims.forEach(function (d) {
      var g = el("g", {"class": "axes"}, s);
      el("line", {x1: d.x, y1: top, x2: d.x, y2: bottom}, g);
      el("text", {x: d.x, y: top - 16, "text-anchor": "middle", "class": "label" + (d.score ? " score" : "")}, g, d.name);
      d.ticks.forEach(function (t) {
        var y = d.numeric ? d.scale(t) : d.tickPos(t);
        el("line", {x1: d.x - 4, y1: y, x2: d.x, y2: y}, g);
        el("text", {x: d.x - 7, y: y + 4, "text-anchor": "end", "class": "tick halo"}, g, d.numeric ? fmtTick(t, d.ticks.step) : t);
      });
    });
    el("text", {x: left, y: H - 12, "class": "tick"}, s, "settings (left) → scores (right); each axis spans its runs' range");
    legend(s, right + 50, top + 10, Object.keys(colours).map(function (k) { return {label: colourBy + " " + k, colour: colours[k]}; }));
  }

  function scorePlot(container, data, score, xKey) {
    if (!xKey) { container.textContent = "No numeric setting varies between these runs."; return; }
    var seriesKeys = data.keys.filter(function (k) { return k !== xKey; });
    var label = function (r) { return seriesKeys.map(function (k) { return k + " " + fmt(r.config[k]); }).join(", ") || "all runs"; };
    var runs = data.runs.filter(function (r) { return typeof r.config[xKey] === "number" && typeof r.scores[score] === "number"; });
    if (!runs.length) { container.textContent = "No run has both " + xKey + " and " + score + "."; return; }
    var lw = legendWidth(runs.map(label));
    var box = {x0: 80, x1: 600, y0: 20, y1: 320}, W = box.x1 + 30 + lw, H = 380;
    var s = svg(container, W, H, score + " against " + xKey);
    var xsVals = runs.map(function (r) { return r.config[xKey]; });
    var xe = extent(xsVals);
    var log = xe[0] > 0 && xe[1] / xe[0] >= 4;
    if (log) { xe = [xe[0] / 1.4, xe[1] * 1.4]; } else { var p = (xe[1] - xe[0]) * 0.08; xe = [xe[0] - p, xe[1] + p]; }
    var xs = scale(xe, [box.x0, box.x1], log);
    var ye = extent(runs.map(function (r) { return r.scores[score]; }).concat([0]));
    var ys = scale([ye[0], ye[1] + (ye[1] - ye[0]) * 0.05], [box.y1, box.y0]);
    var uniqX = Array.from(new Set(xsVals)).sort(function (a, b) { return a - b; });
    axes(s, box, xs, ys, xKey + (log ? " (log scale)" : ""), score, uniqX);
    var groups = {};
    runs.forEach(function (r) { (groups[label(r)] = groups[label(r)] || []).push(r); });
    var names = Object.keys(groups).sort();
    var entries = [];
    names.forEach(function (name, i) {
      var colour = PALETTE[i % PALETTE.length];
      var offset = (i - (names.length - 1) / 2) * 6;
      var byX = {};
      groups[name].forEach(function (r) { (byX[r.config[xKey]] = byX[r.config[xKey]] || []).push(r); });
      var xsSorted = Object.keys(byX).map(Number).sort(function (a, b) { return a - b; });
      var path = [];
      var g = el("g", {"class": "series"}, s);
      xsSorted.forEach(function (x) {
        var vals = byX[x].map(function (r) { return r.scores[score]; });
        var mean = vals.reduce(function (a, b) { return a + b; }, 0) / vals.length;
        var sd = vals.length > 1 ? Math.sqrt(vals.reduce(function (a, v) { return a + (v - mean) * (v - mean); }, 0) / (vals.length - 1)) : 0;
        var cx = xs(x) + offset;
        path.push(cx + "," + ys(mean));
        if (vals.length > 1) {
          el("line", {x1: cx, y1: ys(mean - sd), x2: cx, y2: ys(mean + sd), stroke: colour, "class": "errbar"}, g);
          [mean - sd, mean + sd].forEach(function (v) { el("line", {x1: cx - 5, y1: ys(v), x2: cx + 5, y2: ys(v), stroke: colour, "class": "errbar"}, g); });
        }
        byX[x].forEach(function (r, j) {
          var a = el("a", {href: r.url}, g);
          var dot = el("circle", {cx: cx + (j - (byX[x].length - 1) / 2) * 3, cy: ys(r.scores[score]), r: 3.5, fill: colour, "class": "seed-dot"}, a);
          el("title", {}, dot, r.id + ": " + fmt(r.scores[score]));
        });
        var m = el("rect", {x: cx - 4, y: ys(mean) - 4, width: 8, height: 8, fill: "white", stroke: colour, "class": "mean-mark"}, g);
        el("title", {}, m, name + ", " + xKey + " " + fmt(x) + ": mean " + fmt(mean) + " ± " + fmt(sd) + " (n " + vals.length + ")");
      });
      el("polyline", {points: path.join(" "), stroke: colour, "class": "mean-line"}, g);
      entries.push({label: name, colour: colour});
    });
    legend(s, box.x1 + 20, box.y0 + 10, entries);
  }

  function parallelPage() {
    var data = pageData("plot-data");
    if (!data || !data.runs.length) return;
    var colour = document.getElementById("pc-colour");
    var pc = function () { parallelPlot(document.getElementById("parallel-plot"), data, colour.value); };
    colour.addEventListener("change", pc);
    pc();
    var sc = document.getElementById("sv-score"), sx = document.getElementById("sv-x");
    var sv = function () { scorePlot(document.getElementById("score-plot"), data, sc.value, sx.value); };
    sc.addEventListener("change", sv); sx.addEventListener("change", sv);
    sv();
  }

  // ---- the run page: per-latent rate and loss curves ----------------------------------------------

  function barPlot(container, values, xlabel, ylabel) {
    var W = 640, H = 300, box = {x0: 80, x1: 620, y0: 15, y1: 240};
    var s = svg(container, W, H, ylabel + " per " + xlabel);
    var n = values.length;
    var ys = scale([0, Math.max.apply(null, values.concat([1e-9])) * 1.08], [box.y1, box.y0]);
    var bw = (box.x1 - box.x0) / n;
    var xs = function (i) { return box.x0 + (i + 0.5) * bw; };
    xs.ticks = function () { return values.map(function (_, i) { return i; }); };
    axes(s, box, xs, ys, xlabel, ylabel);
    values.forEach(function (v, i) {
      var r = el("rect", {x: box.x0 + i * bw + bw * 0.15, y: ys(v), width: bw * 0.7, height: box.y1 - ys(v), "class": "bar"}, s);
      el("title", {}, r, xlabel + " " + i + ": " + fmt(v));
    });
  }

  function linePlot(container, title, series, ylabel) {
    var names = Object.keys(series);
    var legendRows = names.length > 1 ? Math.ceil(names.length / 5) : 0;
    var box = {x0: 92, x1: 450, y0: 30, y1: 220}, W = 470, H = 270 + (legendRows ? 14 + 13 * legendRows : 0);
    var s = svg(container, W, H, title);
    el("text", {x: (box.x0 + box.x1) / 2, y: 16, "text-anchor": "middle", "class": "title"}, s, title);
    var allX = [], allY = [];
    names.forEach(function (k) { series[k].forEach(function (p) { allX.push(p[0]); allY.push(p[1]); }); });
    var xs = scale(extent(allX), [box.x0, box.x1]);
    var ys = scale(extent(allY), [box.y1, box.y0]);
    // Steps are whole numbers: no ticks between them.
    var xt = xs.ticks(6).filter(function (t) { return Number.isInteger(t); });
    xt.step = Math.max(1, xs.ticks(6).step || 1);
    axes(s, box, xs, ys, "step", ylabel, xt.length >= 2 ? xt : undefined);
    names.forEach(function (k, i) {
      var colour = PALETTE[i % PALETTE.length];
      var pts = series[k].filter(function (p) { return p[1] !== null; }).map(function (p) { return xs(p[0]) + "," + ys(p[1]); });
      var line = el("polyline", {points: pts.join(" "), stroke: colour, "class": "curve"}, s);
      el("title", {}, line, k);
      if (series[k].length === 1) el("circle", {cx: xs(series[k][0][0]), cy: ys(series[k][0][1]), r: 3, fill: colour}, s);
    });
    if (names.length > 1) {
      // Many latents: a compact legend under the plot.
      var g = el("g", {"class": "legend small"}, s);
      names.forEach(function (k, i) {
        var x = box.x0 + (i % 5) * 70, y = box.y1 + 60 + Math.floor(i / 5) * 13;
        el("rect", {x: x, y: y - 7, width: 8, height: 8, fill: PALETTE[i % PALETTE.length]}, g);
        el("text", {x: x + 11, y: y}, g, k.split("/").pop());
      });
    }
  }

  function runPage() {
    var data = pageData("plot-data");
    if (!data) return;
    if (data.rate) barPlot(document.getElementById("rate-plot"), data.rate, "latent", "rate (nats)");
    var curves = data.curves || {};
    var grid = document.getElementById("curves");
    if (!grid) return;
    var groups = {};
    var order = function (tag) { return tag.indexOf("train/") === 0 ? 0 : tag.indexOf("perf/") === 0 ? 2 : 1; };
    Object.keys(curves).sort(function (a, b) { return order(a) - order(b) || (a < b ? -1 : a > b ? 1 : 0); }).forEach(function (tag) {
      var parts = tag.split("/");
      var head = parts.length > 1 && /^\d+$/.test(parts[parts.length - 1]) ? parts.slice(0, -1).join("/") : tag;
      (groups[head] = groups[head] || {})[tag] = curves[tag];
    });
    Object.keys(groups).forEach(function (head) {
      var div = document.createElement("div");
      div.className = "plot small-plot";
      grid.appendChild(div);
      var many = Object.keys(groups[head]).length > 1;
      linePlot(div, many ? head + " (one line per latent)" : head, groups[head], head.split("/").pop());
    });
  }

  // ---- jobs: polling /api/jobs ------------------------------------------------------------------

  var FINAL = {done: true, failed: true, cancelled: true};

  function when(t) {
    if (t === null || t === undefined) return "–";
    return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function authHeaders() {
    var t = document.getElementById("token");
    var token = t ? t.value : "";
    return token ? {"Authorization": "Bearer " + token} : {};
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function jobWhat(j) { return j.params.name || j.params.run || j.params.config || ""; }

  /* A job's result in words: "run x, status done" or "submission y, mig 0.81, factor_vae 1"
     (as pages.fmt_result writes it in the first rendering). */
  function jobResult(j) {
    if (j.error) return j.error;
    var parts = [];
    (function walk(obj) {
      Object.keys(obj || {}).forEach(function (k) {
        var v = obj[k];
        if (v !== null && typeof v === "object" && !Array.isArray(v)) walk(v);
        else if (v !== null && v !== undefined) parts.push(k + " " + (typeof v === "number" ? fmt(v) : String(v)));
      });
    })(j.result);
    return parts.join(", ");
  }

  function jobsPage() {
    var opts = pageData("jobs-data") || {};
    var body = document.getElementById("jobs-body");
    var selected = opts.selected || "";
    var timer = null;

    function showDetail(id) {
      selected = id;
      fetch("/api/jobs/" + encodeURIComponent(id)).then(function (r) { return r.json(); }).then(function (j) {
        if (j.error) return;
        var panel = document.getElementById("job-detail");
        panel.hidden = false;
        document.getElementById("job-detail-id").textContent = j.id + " (" + j.kind + ")";
        var st = document.getElementById("job-detail-state");
        st.className = "state state-" + j.state; st.textContent = j.state;
        var links = document.getElementById("job-detail-links");
        links.textContent = "";
        if (j.result && j.result.submission) {
          var a = document.createElement("a");
          a.href = "/submissions/" + encodeURIComponent(j.result.submission);
          a.textContent = "the scored submission";
          links.appendChild(a);
        }
        document.getElementById("job-log").textContent = j.log_tail || (j.error || "(no log yet)");
      });
    }

    function cancel(id) {
      fetch("/api/jobs/" + encodeURIComponent(id), {method: "DELETE", headers: authHeaders()})
        .then(function (r) { return r.json(); }).then(function (j) { if (j.error) alert(j.error); refresh(); });
    }

    function render(data) {
      var c = data.counts || {};
      document.getElementById("job-counts").textContent = Object.keys(c).map(function (k) { return k + " " + c[k]; }).join(" · ");
      body.textContent = "";
      if (!data.jobs.length) {
        var tr = document.createElement("tr"); tr.className = "empty-row";
        var td = cell(tr, "No jobs yet.", "empty"); td.colSpan = 11;
        body.appendChild(tr);
      }
      data.jobs.forEach(function (j) {
        var tr = document.createElement("tr");
        tr.className = "job-row" + (j.id === selected ? " selected" : "");
        tr.dataset.job = j.id;
        cell(tr, j.id, "mono"); cell(tr, j.kind); cell(tr, jobWhat(j));
        var st = cell(tr, ""); var span = document.createElement("span");
        span.className = "state state-" + j.state; span.textContent = j.state; st.appendChild(span);
        cell(tr, j.attempts, "num"); cell(tr, j.worker || "", "mono small");
        cell(tr, when(j.created_at)); cell(tr, when(j.started_at)); cell(tr, when(j.finished_at));
        cell(tr, jobResult(j), "small");
        var act = cell(tr, "");
        if (!FINAL[j.state]) {
          var b = document.createElement("button"); b.textContent = "cancel"; b.className = "small-button";
          b.addEventListener("click", function (ev) { ev.stopPropagation(); cancel(j.id); });
          act.appendChild(b);
        }
        tr.addEventListener("click", function () { showDetail(j.id); });
        body.appendChild(tr);
      });
      return data.jobs.some(function (j) { return !FINAL[j.state]; });
    }

    function refresh() {
      clearTimeout(timer);
      fetch("/api/jobs?limit=200").then(function (r) { return r.json(); }).then(function (data) {
        var active = render(data);
        if (selected) showDetail(selected);
        timer = setTimeout(refresh, active ? 1000 : 4000);
      }).catch(function () { timer = setTimeout(refresh, 5000); });
    }
    Array.prototype.forEach.call(body.querySelectorAll("tr.job-row"), function (tr) {
      tr.addEventListener("click", function () { showDetail(tr.dataset.job); });
    });
    refresh();
  }

  // ---- submit: the upload form, then the job it became ---------------------------------------------

  function submitPage() {
    var opts = pageData("submit-data");
    var form = document.getElementById("submit-form");
    var kind = document.getElementById("kind"), data = document.getElementById("data");
    function fillData() {
      data.textContent = "";
      opts.data_choices[kind.value].forEach(function (d) {
        var o = document.createElement("option"); o.value = d; o.textContent = d; data.appendChild(o);
      });
      Array.prototype.forEach.call(document.querySelectorAll(".weights-only"), function (row) { row.hidden = kind.value !== "weights"; });
    }
    kind.addEventListener("change", fillData);
    fillData();
    var status = document.getElementById("submit-status"), log = document.getElementById("submit-log");

    function watch(id) {
      fetch("/api/jobs/" + encodeURIComponent(id)).then(function (r) { return r.json(); }).then(function (j) {
        status.textContent = "";
        var a = document.createElement("a"); a.href = "/jobs?job=" + encodeURIComponent(id); a.textContent = "Job " + id;
        status.appendChild(a);
        var st = document.createElement("span"); st.className = "state state-" + j.state; st.id = "submit-state";
        st.textContent = j.state;
        status.appendChild(document.createTextNode(" ")); status.appendChild(st);
        if (j.log_tail) { log.hidden = false; log.textContent = j.log_tail; }
        if (j.state === "done" && j.result && j.result.submission) {
          status.appendChild(document.createTextNode(" · "));
          var s = document.createElement("a"); s.href = "/submissions/" + encodeURIComponent(j.result.submission);
          s.textContent = "its scores"; s.id = "submission-link"; status.appendChild(s);
          status.appendChild(document.createTextNode(" · "));
          var l = document.createElement("a"); l.href = "/leaderboard"; l.textContent = "leaderboard"; l.id = "leaderboard-link";
          status.appendChild(l);
        } else if (j.state === "failed") {
          status.appendChild(document.createTextNode(" " + (j.error || "")));
        }
        if (!FINAL[j.state]) setTimeout(function () { watch(id); }, 1000);
      });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var picked = Array.prototype.filter.call(document.querySelectorAll("input.metric"), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
      document.getElementById("metrics").value = picked.join(",");
      var body = new FormData(form);
      var button = document.getElementById("submit-button");
      button.disabled = true;
      document.getElementById("submit-result").hidden = false;
      status.textContent = "uploading ...";
      fetch("/api/submissions", {method: "POST", body: body, headers: authHeaders()})
        .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, code: r.status, body: j}; }); })
        .then(function (res) {
          button.disabled = false;
          if (!res.ok) {
            status.textContent = "";
            var e = document.createElement("span"); e.className = "error"; e.id = "submit-error";
            e.textContent = "Rejected (" + res.code + "): " + (res.body.error || "error");
            status.appendChild(e);
            return;
          }
          watch(res.body.id);
        })
        .catch(function (err) { button.disabled = false; status.textContent = "Upload failed: " + err; });
    });
  }

  return {parallelPage: parallelPage, runPage: runPage, jobsPage: jobsPage, submitPage: submitPage,
          _ticks: ticks, _fmt: fmt};
})();
