// bertctr live page: polls the API and draws it with the vendored uPlot.
// Plain browser JavaScript, no build step, nothing loaded from the internet.
// Every panel copes with missing data ("no data yet"); a failed request is
// caught and reported in the status line, never thrown.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var REFRESH_S = Math.max(1, Number(params.get("refresh")) || 5);
  var MINUTES = Math.min(120, Math.max(1, Number(params.get("minutes")) || 60));
  // a CTR point on fewer impressions than this is not drawn (two impressions make a 100% spike)
  var MIN_IMPRESSIONS = Math.max(1, Number(params.get("min_impressions")) || 10);
  var HISTORY = 180; // throughput and lag samples kept in the page
  var IMAGES_EVERY = 3; // refreshes between two readings of a segment's images
  var PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
  ];
  var TOTAL_COLOR = "#111111";
  // tick steps of a time axis, in seconds: never below one second
  var TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400, 172800, 604800];
  var INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 1e4,
    2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7];

  var state = {
    endpoints: null, // paths of the OpenAPI document; null: unknown, try everything
    item: params.get("item") || "",
    abSegment: params.get("segment") || "",
    smooth: Math.max(1, Number(params.get("smooth")) || 1), // minutes summed per CTR point
    topSegments: Math.min(12, Math.max(1, Number(params.get("segments")) || 5)),
    charts: {},
    isolated: {}, // chart id -> the series label shown alone (with the total)
    variantImages: {}, // variant -> image id, of the item on show
    imagesFor: undefined, // the segment whose images are on show (null: all)
    viewItem: null, // the item of the item view (a clicked image's, else the chart's)
    itemFor: null, // the item whose view was last drawn
    whyFor: undefined, // the segment whose drivers were last asked for
    fleetPrev: null,
    throughput: { t: [], topics: {} },
    lag: { t: [], topics: {} },
    refreshes: 0,
    problems: [],
  };
  // for tests and the curious: the charts and the refresh count
  window.bertctr = state;

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  function getJSON(path) {
    return fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error(path + ": HTTP " + r.status); }
        return r.json();
      });
  }

  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }

  function fmtInt(v) { return num(v) === null ? "–" : Math.round(v).toLocaleString("en-US"); }

  function fmtPct(v, digits) {
    return num(v) === null ? "–" : (100 * v).toFixed(digits === undefined ? 2 : digits) + "%";
  }

  function fmtNum(v, digits) { return num(v) === null ? "–" : v.toFixed(digits === undefined ? 3 : digits); }

  function fmtTime(epochS) {
    if (num(epochS) === null) { return "–"; }
    return new Date(epochS * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  // a tick or legend time, local: 14:05, 14:05:30, or 12-07 14:05 across days
  function fmtClock(epochS, seconds, withDate) {
    var d = new Date(epochS * 1000);
    var text = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    if (seconds) { text += ":" + pad2(d.getSeconds()); }
    if (withDate) { text = pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + text; }
    return text;
  }

  function fmtAgo(epochS) {
    if (num(epochS) === null) { return "–"; }
    var s = Math.max(0, Date.now() / 1000 - epochS);
    if (s < 90) { return Math.round(s) + " s ago"; }
    if (s < 5400) { return Math.round(s / 60) + " min ago"; }
    return (s / 3600).toFixed(1) + " h ago";
  }

  // decimals that show a tick step exactly (0.25 -> 2, 5 -> 0)
  function decimalsFor(step) {
    var d = 0;
    while (d < 6 && Math.abs(Math.round(step * Math.pow(10, d)) - step * Math.pow(10, d)) > 1e-6) { d += 1; }
    return d;
  }

  function setText(id, text) { var el = $(id); if (el) { el.textContent = text; } }

  function hasData(panelId, yes) {
    var el = $(panelId);
    if (el) { el.classList.toggle("has-data", !!yes); }
  }

  function setEmpty(panelId, text) {
    var el = $(panelId) && $(panelId).querySelector(".empty");
    if (el) { el.textContent = text; }
  }

  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }

  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (cls) { el.className = cls; }
    return el;
  }

  // head: names, or {text, cls}; a column's cls goes on each of its cells too
  function table(el, head, rows) {
    clear(el);
    var colCls = head.map(function (h) { return typeof h === "object" ? h.cls || "" : ""; });
    var thead = document.createElement("thead");
    var tr = document.createElement("tr");
    head.forEach(function (h, i) { tr.appendChild(cell("th", typeof h === "object" ? h.text : h, colCls[i])); });
    thead.appendChild(tr);
    el.appendChild(thead);
    var tbody = document.createElement("tbody");
    rows.forEach(function (row) {
      var r = document.createElement("tr");
      if (row.cls) { r.className = row.cls; }
      row.cells.forEach(function (c, i) {
        var td = c !== null && typeof c === "object" ? cell("td", c.text, c.cls) : cell("td", String(c));
        if (colCls[i]) { td.classList.add(colCls[i]); }
        r.appendChild(td);
      });
      tbody.appendChild(r);
    });
    el.appendChild(tbody);
  }

  function facts(el, pairs) {
    clear(el);
    pairs.forEach(function (p) {
      el.appendChild(cell("dt", p[0]));
      el.appendChild(cell("dd", p[1]));
    });
  }

  function problem(text) { state.problems.push(text); }

  // ---------------------------------------------------------------- images

  function imageUrl(imageId) {
    return imageId && available("/images") ? "images/" + encodeURIComponent(imageId) : null;
  }

  // a thumbnail: the image when the server has it, else a box with its name
  function thumbnail(imageId, alt) {
    var url = imageUrl(imageId);
    if (!url) { return cell("span", alt, "thumb missing"); }
    var img = document.createElement("img");
    img.className = "thumb";
    img.alt = alt;
    img.title = imageId;
    img.loading = "eager";
    img.decoding = "async";
    img.src = url;
    img.addEventListener("error", function () {
      img.replaceWith(cell("span", alt, "thumb missing"));
    });
    return img;
  }

  // figures of thumbnails: [{imageId, alt, caption: [lines], color}]; redrawn only when changed
  function thumbs(el, entries) {
    var key = JSON.stringify(entries);
    if (el.dataset.key === key) { return; }
    el.dataset.key = key;
    clear(el);
    entries.forEach(function (e) {
      var fig = document.createElement("figure");
      if (e.color) { fig.style.borderColor = e.color; }
      if (e.item) { fig.dataset.item = e.item; fig.classList.add("clickable"); fig.title = "open item " + e.item; }
      fig.appendChild(thumbnail(e.imageId, e.alt));
      var cap = document.createElement("figcaption");
      e.caption.forEach(function (line, i) { cap.appendChild(cell("span", line, i ? "muted" : "")); });
      fig.appendChild(cap);
      el.appendChild(fig);
    });
  }

  // ---------------------------------------------------------------- charts

  function lastValue(values) {
    for (var i = values.length - 1; i >= 0; i -= 1) {
      if (num(values[i]) !== null) { return values[i]; }
    }
    return null;
  }

  // x: the data's own range; one sample gets `pad` seconds either side. uPlot would stretch a
  // time axis with one sample over 86,400,000 of its units (1,000 days when they are seconds),
  // and hands that to this function as min and max, so the range is read from the data itself.
  function xRange(pad) {
    return function (u, min, max) {
      var xs = (u.data && u.data[0]) || [];
      var lo = xs.length ? xs[0] : min;
      var hi = xs.length ? xs[xs.length - 1] : max;
      if (num(lo) === null || num(hi) === null) { var now = Date.now() / 1000; return [now - pad, now + pad]; }
      return hi > lo ? [lo, hi] : [lo - pad, hi + pad];
    };
  }

  // y: from 0 (every figure here is >= 0) or the data's low end, at least `unit` tall
  function yRange(spec) {
    var unit = spec.yUnit || 1;
    return function (u, min, max) {
      if (num(min) === null || num(max) === null) { return [0, unit]; }
      var lo = spec.fromZero ? Math.min(0, min) : min;
      var hi = max;
      if (hi - lo < unit) {
        if (spec.fromZero) { hi = lo + unit; }
        else { var mid = (lo + hi) / 2; lo = mid - unit / 2; hi = mid + unit / 2; }
      }
      var margin = (hi - lo) * 0.08;
      return [lo === 0 ? 0 : lo - margin, hi + margin];
    };
  }

  function timeTicks(u, splits, axisIdx, space, incr) {
    var span = (u.scales.x.max || 0) - (u.scales.x.min || 0);
    var seconds = incr < 60;
    var withDate = span > 86400;
    var labels = splits.map(function (v) { return fmtClock(v, seconds, withDate); });
    u.bertctrTicks = u.bertctrTicks || {};
    u.bertctrTicks.x = labels;
    return labels;
  }

  // Draws (or updates) a line chart; returns how many non-null points it shows.
  // spec: {x: [epoch s], series: [{label, values, color, width, total}], fmt: (v, decimals) -> text,
  //        integer: ticks on whole numbers, yUnit: the least y span, fromZero, xPad: s,
  //        spanGaps, counts: [[impressions per point] per series] (CTR charts)}
  function lineChart(id, spec) {
    var el = $(id);
    var points = 0;
    spec.series.forEach(function (s) {
      s.values.forEach(function (v) { if (num(v) !== null) { points += 1; } });
    });
    el.dataset.points = String(points);
    el.dataset.series = String(spec.series.length);
    var old = state.charts[id];
    if (points === 0 || typeof window.uPlot !== "function") {
      if (old) { old.destroy(); delete state.charts[id]; }
      return points;
    }
    // shown before it is drawn, so the chart takes the panel's width
    var panel = el.closest(".panel");
    if (panel) { panel.classList.add("has-data"); }
    var labels = spec.series.map(function (s) { return s.label; }).join("\u0000");
    var data = [spec.x].concat(spec.series.map(function (s) {
      return s.values.map(function (v) { return num(v); });
    }));
    var chart = old;
    if (old && old.bertctrLabels === labels) {
      old.setData(data);
    } else {
      if (old) { old.destroy(); }
      chart = newChart(id, el, spec, data);
      chart.bertctrLabels = labels;
      state.charts[id] = chart;
    }
    chart.bertctrCounts = spec.counts || null;
    chart.bertctrTotal = !!spec.hasTotal; // series 1 is the black total: never hidden
    applyIsolation(id);
    chart.setLegend(); // the latest values, unless the cursor points at others
    return points;
  }

  function newChart(id, el, spec, data) {
    var fmt = spec.fmt || function (v, d) { return fmtNum(v, d); };
    var xPad = spec.xPad || 60;
    var yAxis = {
      size: 64,
      values: function (u, splits, axisIdx, space, incr) {
        var d = spec.integer ? 0 : decimalsFor(spec.scale ? incr * spec.scale : incr);
        var out = splits.map(function (v) { return fmt(v, d); });
        u.bertctrTicks = u.bertctrTicks || {};
        u.bertctrTicks.y = out;
        return out;
      },
    };
    if (spec.integer) { yAxis.incrs = INT_INCRS; }
    var opts = {
      width: chartWidth(el),
      height: spec.height || 240,
      scales: {
        x: { time: true, range: xRange(xPad) },
        y: { range: yRange(spec) },
      },
      legend: { live: true },
      series: [{
        label: "time",
        value: function (u, v, si, idx) {
          var t = idx === null || idx === undefined ? lastValue(u.data[0]) : v;
          return num(t) === null ? "–" : fmtClock(t, xPad < 60 || spec.secondsInLegend, false);
        },
      }].concat(spec.series.map(function (s) {
        return {
          label: s.label,
          stroke: s.color,
          width: s.width || 1.5,
          spanGaps: !!spec.spanGaps,
          points: { show: true, size: 4 },
          // the value under the cursor; the latest one when the cursor is elsewhere
          value: function (u, v, si, idx) {
            var shown = idx === null || idx === undefined ? lastValue(u.data[si]) : v;
            return num(shown) === null ? "–" : fmt(shown, spec.legendDecimals);
          },
        };
      })),
      axes: [
        { space: 70, incrs: TIME_INCRS, values: timeTicks },
        yAxis,
      ],
    };
    var chart = new window.uPlot(opts, data, el);
    if (spec.isolate) { isolateOnClick(id, chart); }
    return chart;
  }

  function chartWidth(el) { return Math.max(200, el.clientWidth || 600); }

  function resizeCharts() {
    Object.keys(state.charts).forEach(function (id) {
      var el = $(id);
      var chart = state.charts[id];
      if (el && chart) { chart.setSize({ width: chartWidth(el), height: chart.height }); }
    });
  }

  // a click on a legend entry shows that series alone (with the black total); another shows all
  function isolateOnClick(id, chart) {
    var legend = chart.root.querySelector(".u-legend");
    if (!legend) { return; }
    legend.addEventListener("click", function (e) {
      var row = e.target.closest(".u-series");
      var rows = Array.prototype.slice.call(legend.querySelectorAll(".u-series"));
      var i = rows.indexOf(row);
      e.stopPropagation(); // uPlot's own toggle would fight this one
      e.preventDefault();
      var u = state.charts[id];
      if (i < 1 || !u || !u.series[i]) { return; }
      var label = u.series[i].label;
      var total = u.series[1] && u.bertctrTotal ? u.series[1].label : null;
      state.isolated[id] = state.isolated[id] === label || label === total ? null : label;
      applyIsolation(id);
      if (id === "chart-ctr-segment") { refreshImages(); }
    }, true);
  }

  function applyIsolation(id) {
    var u = state.charts[id];
    if (!u) { return; }
    var alone = state.isolated[id] || null;
    var labels = u.series.map(function (s) { return s.label; });
    if (alone && labels.indexOf(alone) < 0) { alone = state.isolated[id] = null; }
    for (var i = 1; i < u.series.length; i += 1) {
      var show = !alone || labels[i] === alone || (i === 1 && u.bertctrTotal);
      if (u.series[i].show !== show) { u.setSeries(i, { show: show }); }
    }
    u.root.classList.toggle("isolated", !!alone);
  }

  // ---------------------------------------------------------------- CTR

  function windowWords() {
    return state.smooth <= 1 ? "per minute" : "over " + state.smooth + " minutes";
  }

  // CTR of each minute, or of the trailing `state.smooth` minutes (sums, not a mean of ratios);
  // null where the window has fewer than MIN_IMPRESSIONS impressions
  function ctrWindow(s) {
    var k = state.smooth;
    var imps = Array.isArray(s.impressions) ? s.impressions : [];
    var clicks = Array.isArray(s.clicks) ? s.clicks : [];
    var out = { values: [], counts: [] };
    var n = 0;
    var c = 0;
    for (var i = 0; i < imps.length; i += 1) {
      n += imps[i] || 0;
      c += clicks[i] || 0;
      if (i >= k) {
        n -= imps[i - k] || 0;
        c -= clicks[i - k] || 0;
      }
      out.values.push(n >= MIN_IMPRESSIONS ? c / n : null);
      out.counts.push(n);
    }
    return out;
  }

  // the first minute anything was counted (leading empty minutes are not drawn)
  function firstCounted(doc) {
    var all = [doc.total].concat(doc.series || []).filter(Boolean);
    var t = doc.t || [];
    for (var i = 0; i < t.length; i += 1) {
      if (all.some(function (s) { return (s.impressions || [])[i] > 0; })) { return i; }
    }
    return Math.max(0, t.length - 1);
  }

  function ctrSeriesSpec(doc, totalLabel) {
    var from = firstCounted(doc);
    var series = [];
    var counts = [];
    function add(s, label, color, width) {
      var w = ctrWindow(s);
      series.push({ label: label, values: w.values.slice(from), color: color, width: width });
      counts.push(w.counts.slice(from));
    }
    if (doc.total) { add(doc.total, totalLabel || doc.total.name, TOTAL_COLOR, 2.5); }
    (doc.series || []).forEach(function (s, i) { add(s, s.name, PALETTE[i % PALETTE.length]); });
    return {
      x: (doc.t || []).slice(from),
      series: series,
      counts: counts,
      fmt: function (v, d) { return fmtPct(v, d); },
      scale: 100, // ticks are shown in percent
      legendDecimals: 1,
      yUnit: 0.01,
      fromZero: true,
      xPad: 60,
      spanGaps: true,
      isolate: true,
      hasTotal: !!doc.total,
    };
  }

  function ctrEmpty(panelId, doc) {
    var shown = doc && doc.total ? doc.total.window_impressions : 0;
    setEmpty(panelId, shown > 0
      ? "fewer than " + MIN_IMPRESSIONS + " impressions in every " + (state.smooth > 1 ? state.smooth + "-minute window" : "minute") +
        ": choose a longer window"
      : "no data yet");
  }

  function renderCtrSegment(doc) {
    var points = 0;
    if (doc && Array.isArray(doc.t) && doc.t.length) {
      var spec = ctrSeriesSpec(doc, "all segments");
      points = lineChart("chart-ctr-segment", spec);
    } else {
      lineChart("chart-ctr-segment", { x: [], series: [] });
    }
    hasData("panel-ctr-segment", points > 0);
    ctrEmpty("panel-ctr-segment", doc);
    var shown = (doc && doc.series || []).length;
    var all = shown + ((doc && doc.omitted) || 0);
    setText("segment-hint", "event time; " + (shown < all ? "the " + shown + " busiest of " + all + " segments"
      : "all " + all + " segments") + ", and all together (black); points on fewer than " +
      MIN_IMPRESSIONS + " impressions are not drawn");
    var total = doc && doc.total;
    setText("kpi-clock", doc && num(doc.clock) !== null ? fmtTime(doc.clock) : "–");
    setText("kpi-impressions", total ? fmtInt(total.window_impressions) : "–");
    setText("kpi-clicks", total ? fmtInt(total.window_clicks) : "–");
    setText("kpi-ctr", total ? fmtPct(total.window_ctr) : "–");
    // the A/B segment choices: the busiest segments
    var select = $("ab-segment");
    var names = ((doc && doc.series) || []).map(function (s) { return s.name; });
    syncOptions(select, names, "(all segments)");
  }

  function syncOptions(select, values, emptyLabel, labels) {
    var wanted = [""].concat(values);
    var have = Array.prototype.map.call(select.options, function (o) { return o.value; });
    if (wanted.join("\u0000") === have.join("\u0000")) {
      if (select.options.length) { select.options[0].textContent = emptyLabel; }
      return;
    }
    var current = select.value;
    clear(select);
    wanted.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v;
      o.textContent = v === "" ? emptyLabel : (labels && labels[v]) || v;
      select.appendChild(o);
    });
    select.value = wanted.indexOf(current) >= 0 ? current : "";
  }

  function renderCtrVariant(doc) {
    var points = 0;
    if (doc && Array.isArray(doc.t) && doc.t.length) {
      points = lineChart("chart-ctr-variant", ctrSeriesSpec(doc, doc.item ? "item " + doc.item : "item"));
    } else {
      lineChart("chart-ctr-variant", { x: [], series: [] });
    }
    hasData("panel-ctr-variant", points > 0);
    ctrEmpty("panel-ctr-variant", doc);
    setText("variant-hint", "event time; each visual variant, and the whole item (black); points on fewer than " +
      MIN_IMPRESSIONS + " impressions are not drawn");
    // each variant's image, in its line's colour (the A/B table shows them too)
    state.variantImages = {};
    var entries = ((doc && doc.series) || []).map(function (s, i) {
      if (s.image_id) { state.variantImages[s.name] = s.image_id; }
      return {
        imageId: s.image_id || null,
        item: doc.item || null,
        alt: s.name,
        color: PALETTE[i % PALETTE.length],
        caption: [s.name, fmtPct(s.window_ctr, 1) + " of " + fmtInt(s.window_impressions)],
      };
    });
    thumbs($("variant-thumbs"), entries);
    var items = (doc && doc.items) || [];
    var labels = {};
    items.forEach(function (it) { labels[it.item_id] = it.item_id + " (" + fmtInt(it.impressions) + ")"; });
    var select = $("item-select");
    var ids = items.map(function (it) { return it.item_id; });
    if (state.item && ids.indexOf(state.item) < 0) { ids.unshift(state.item); }
    syncOptions(select, ids, doc && doc.item && !state.item ? "(busiest: " + doc.item + ")" : "(busiest item)", labels);
    select.value = state.item;
    return doc ? doc.item : null;
  }

  function renderTitles() {
    Array.prototype.forEach.call(document.querySelectorAll(".ctr-window"), function (el) {
      el.textContent = windowWords();
    });
  }

  // ---------------------------------------------------------------- a segment's images

  function imageSegment() {
    var alone = state.isolated["chart-ctr-segment"];
    return alone && alone !== "all segments" ? alone : null;
  }

  function renderImages(segment, doc) {
    setText("images-segment", segment || "all segments");
    var ok = doc && (doc.top || []).length + (doc.bottom || []).length > 0;
    function entries(list) {
      return (list || []).map(function (c) {
        return {
          imageId: c.image_id || null,
          item: c.item_id,
          alt: c.item_id + " " + c.variant,
          caption: [c.item_id + " · " + c.variant,
            fmtPct(c.ctr, 1) + " of " + fmtInt(c.impressions) + " (ranked " + fmtPct(c.score, 1) + ")"],
        };
      });
    }
    thumbs($("images-top"), ok ? entries(doc.top) : []);
    thumbs($("images-bottom"), ok ? entries(doc.bottom) : []);
    if (doc) {
      setText("images-hint", "variants of the " + fmtInt(doc.items_considered) + " busiest items with at least " +
        fmtInt(doc.min_impressions) + " impressions here, ranked by CTR shrunk towards " +
        fmtPct(doc.prior_ctr, 1) + " (a prior worth " + fmtInt(doc.prior_strength) + " impressions)");
    }
    setEmpty("panel-images", doc && doc.items_considered ? "no variant has " + fmtInt(doc.min_impressions) +
      " impressions in this segment yet" : "no data yet");
    hasData("panel-images", ok);
  }

  function refreshImages() {
    if (!available("/series/images")) { return Promise.resolve(null); }
    var segment = imageSegment();
    state.imagesFor = segment;
    var q = "series/images?n=3" + (segment ? "&segment=" + encodeURIComponent(segment) : "");
    return attempt("/series/images", getJSON(q)).then(function (doc) {
      if (state.imagesFor !== segment) { return; } // another segment was chosen meanwhile
      guard("images", function () { renderImages(segment, doc); });
    });
  }

  // ---------------------------------------------------------------- model

  function renderModel(doc) {
    var pts = (doc && doc.points) || [];
    var latest = doc && doc.latest;
    var points = lineChart("chart-model", {
      x: pts.map(function (p) { return p.t; }),
      series: [
        { label: "NE", values: pts.map(function (p) { return p.ne; }), color: "#d62728", width: 2 },
        { label: "AUC", values: pts.map(function (p) { return p.auc; }), color: "#1f77b4", width: 2 },
        { label: "calibration", values: pts.map(function (p) { return p.calibration; }), color: "#2ca02c", width: 2 },
      ],
      fmt: function (v, d) { return fmtNum(v, d === undefined ? 3 : d); },
      yUnit: 0.05,
      xPad: 30,
      secondsInLegend: true,
    });
    hasData("panel-model", points > 0);
    setText("kpi-ne", latest ? fmtNum(latest.ne) : "–");
    setText("kpi-auc", latest ? fmtNum(latest.auc) : "–");
    if (latest && num(latest.count) !== null) {
      setText("model-hint", "wall time; " + fmtInt(latest.count) + " examples scored" +
        (latest.model ? " by " + latest.model : "") + ", updated " + fmtAgo(latest.updated_at));
    }
    renderEncoder(doc ? doc.encoder : null, !!(latest && latest.count));
  }

  function lastOf(list, kind) {
    for (var i = (list || []).length - 1; i >= 0; i -= 1) {
      if (list[i] && (!kind || list[i].decision === kind)) { return list[i]; }
    }
    return null;
  }

  function version(name, v) {
    if (!name) { return "–"; }
    return v === null || v === undefined ? String(name) : name + " (v" + v + ")";
  }

  function describeDecision(d) {
    if (!d) { return "none yet"; }
    var text = String(d.decision || "?") + " " + (d.challenger || "?") + " vs " + (d.champion || "?");
    if (num(d.n) !== null) { text += " after " + fmtInt(d.n) + " examples"; }
    if (num(d.at) !== null) { text += ", " + fmtTime(d.at); }
    if (d.reason) { text += " (" + d.reason + ")"; }
    return text;
  }

  function renderEncoder(enc, learning) {
    var el = $("encoder-facts");
    if (!enc || typeof enc !== "object") {
      clear(el);
      hasData("panel-encoder", false);
      // the model learns, but no encoder reports: the workers have no Triton
      setEmpty("panel-encoder", learning ? "no encoder status: the workers learn without image embeddings" : "no data yet");
      return;
    }
    var cmp = enc.comparison;
    var pairs = [
      ["champion", version(enc.champion, enc.champion_version)],
      ["challenger", enc.challenger ? version(enc.challenger, enc.challenger_version) : "none"],
    ];
    if (enc.calibrating) {
      pairs.push(["comparison", "not yet: fitting the map that carries the champion's image weights over"]);
    } else if (cmp && typeof cmp === "object") {
      pairs.push(["comparison", fmtInt(cmp.n) + " paired examples, advantage " + fmtNum(cmp.mean, 5) +
        " [" + fmtNum(cmp.lo, 5) + ", " + fmtNum(cmp.hi, 5) + "]" +
        (num(cmp.std) !== null ? ", std " + fmtNum(cmp.std, 4) : "")]);
    }
    pairs.push(["last promotion", describeDecision(lastOf(enc.decisions, "promote"))]);
    pairs.push(["last decision", describeDecision(enc.last_decision || lastOf(enc.decisions))]);
    if (enc.counts && typeof enc.counts === "object") {
      pairs.push(["decisions", Object.keys(enc.counts).map(function (k) {
        return k + " " + fmtInt(enc.counts[k]);
      }).join(", ") || "none"]);
    }
    facts(el, pairs);
    hasData("panel-encoder", true);
  }

  // ---------------------------------------------------------------- fleet

  function pushSample(store, t, values) {
    store.t.push(t);
    Object.keys(store.topics).forEach(function (k) { store.topics[k].push(values[k] === undefined ? null : values[k]); });
    Object.keys(values).forEach(function (k) {
      if (!store.topics[k]) {
        store.topics[k] = store.t.slice(0, -1).map(function () { return null; });
        store.topics[k].push(values[k]);
      }
    });
    if (store.t.length > HISTORY) {
      store.t.shift();
      Object.keys(store.topics).forEach(function (k) { store.topics[k].shift(); });
    }
  }

  // "t-1a2b-" for ["t-1a2b-clicks", "t-1a2b-labelled"]: the topic prefix, cut at a separator
  function commonPrefix(names) {
    if (names.length < 2) { return ""; }
    var p = names[0];
    names.forEach(function (n) { while (n.indexOf(p) !== 0) { p = p.slice(0, -1); } });
    var cut = Math.max(p.lastIndexOf("-"), p.lastIndexOf("."), p.lastIndexOf("_"));
    return cut >= 0 ? p.slice(0, cut + 1) : "";
  }

  function storeSpec(store, fmt, opts) {
    var names = Object.keys(store.topics);
    if (opts.order) { names.sort(function (a, b) { return opts.order.indexOf(a) - opts.order.indexOf(b); }); }
    else { names.sort(); }
    var prefix = opts.stripPrefix ? commonPrefix(names) : "";
    return {
      x: store.t.slice(),
      series: names.map(function (n, i) {
        return { label: n.slice(prefix.length), values: store.topics[n].slice(), color: PALETTE[i % PALETTE.length] };
      }),
      prefix: prefix,
      fmt: fmt,
      height: 200,
      fromZero: true,
      yUnit: 1,
      integer: !!opts.integer,
      xPad: Math.max(30, 3 * REFRESH_S),
      secondsInLegend: true,
    };
  }

  var EVENT_ORDER = ["impressions", "clicks", "labelled"];

  // when the newest worker report was written (the fleet's counts are as of then)
  function newestReport(doc, now) {
    var newest = null;
    (Array.isArray(doc.workers) ? doc.workers : []).forEach(function (w) {
      var age = num(w.age_s);
      if (age !== null && (newest === null || now - age > newest)) { newest = now - age; }
    });
    return newest === null ? now : newest;
  }

  function renderFleet(doc) {
    if (!doc || typeof doc !== "object") {
      ["panel-throughput", "panel-lag", "panel-dead-letters", "panel-workers"].forEach(function (p) {
        hasData(p, false);
      });
      lineChart("chart-throughput", { x: [], series: [] });
      lineChart("chart-lag", { x: [], series: [] });
      return;
    }
    var now = num(doc.at) !== null ? doc.at : Date.now() / 1000;
    // throughput: event counts only grow (a worker that restarts starts again from 0), and move
    // when a worker reports (every few seconds): rate = delta / time between the newest reports,
    // one sample per new report, so polling faster than workers report shows no 0-spike-0 saw.
    // Ticks and watermark records are not events.
    var events = doc.events && typeof doc.events === "object" ? doc.events : {};
    var reportedAt = newestReport(doc, now);
    var prev = state.fleetPrev;
    if (!prev || reportedAt > prev.at + 0.05) { // report ages are rounded to 1 ms
      if (prev) {
        var rates = {};
        Object.keys(events).forEach(function (kind) {
          var cur = num(events[kind]);
          var before = num(prev.events[kind]);
          if (cur !== null && before !== null && cur >= before) { rates[kind] = (cur - before) / (reportedAt - prev.at); }
          else if (cur !== null) { rates[kind] = null; } // restarted counter: no rate this time
        });
        pushSample(state.throughput, reportedAt, rates);
      }
      state.fleetPrev = { at: reportedAt, events: events };
    }
    var tp = lineChart("chart-throughput", storeSpec(state.throughput, function (v, d) {
      return fmtNum(v, d === undefined ? 1 : d);
    }, { order: EVENT_ORDER }));
    hasData("panel-throughput", tp > 0);

    // lag: per topic (partitions summed) over time, and the laggiest partitions now
    var lag = doc.lag && typeof doc.lag === "object" ? doc.lag : {};
    var perTopic = {};
    var rows = [];
    Object.keys(lag).forEach(function (tpKey) {
      var v = num(lag[tpKey]);
      if (v === null) { return; }
      var topic = tpKey.replace(/:\d+$/, "");
      perTopic[topic] = (perTopic[topic] || 0) + v;
      rows.push([tpKey, v]);
    });
    if (rows.length) { pushSample(state.lag, now, perTopic); }
    var lagSpec = storeSpec(state.lag, function (v) { return fmtInt(v); }, { integer: true, stripPrefix: true });
    var lp = lineChart("chart-lag", lagSpec);
    setText("lag-hint", "per topic, partitions added up" + (lagSpec.prefix ? "; topics named " + lagSpec.prefix + "…" : ""));
    rows.sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); });
    table($("lag-table"), ["partition", "lag"], rows.slice(0, 8).map(function (r) {
      return { cells: [r[0], { text: fmtInt(r[1]), cls: r[1] > 0 ? "bad" : "" }] };
    }));
    hasData("panel-lag", lp > 0 || rows.length > 0);

    // dead letters and labels
    var dead = doc.dead_letters && typeof doc.dead_letters === "object" ? doc.dead_letters : {};
    var reasons = Object.keys(dead).filter(function (k) { return num(dead[k]) !== null; });
    reasons.sort(function (a, b) { return dead[b] - dead[a] || (a < b ? -1 : 1); });
    var totalDead = reasons.reduce(function (acc, k) { return acc + dead[k]; }, 0);
    table($("dead-letter-table"), ["reason", "messages"], reasons.map(function (k) {
      return { cells: [k, fmtInt(dead[k])] };
    }).concat(reasons.length ? [{ cls: "", cells: ["total", fmtInt(totalDead)] }] : []));
    var labels = doc.labels && typeof doc.labels === "object" ? doc.labels : null;
    facts($("label-facts"), labels ? Object.keys(labels).map(function (k) {
      return [k + " labels", fmtInt(labels[k])];
    }) : []);
    if (!reasons.length && labels) {
      table($("dead-letter-table"), ["reason", "messages"], [{ cells: ["none", "0"] }]);
    }
    hasData("panel-dead-letters", reasons.length > 0 || !!labels);

    // workers
    var workers = Array.isArray(doc.workers) ? doc.workers : [];
    table($("worker-table"), ["worker", "report age", "health", "problems"], workers.map(function (w) {
      var problems = Array.isArray(w.problems) ? w.problems.join("; ") : "";
      return {
        cells: [
          String(w.worker || "?"),
          num(w.age_s) === null ? "–" : fmtNum(w.age_s, 1) + " s",
          w.healthy ? { text: "healthy", cls: "good" } : { text: "unhealthy", cls: "bad" },
          problems || "–",
        ],
      };
    }));
    hasData("panel-workers", workers.length > 0);
  }

  // ---------------------------------------------------------------- A/B

  function armsOf(v) {
    if (!v || typeof v !== "object") { return null; }
    if (Array.isArray(v.arms)) { return v.arms; }
    if (v.arms && typeof v.arms === "object") {
      return Object.keys(v.arms).map(function (k) {
        var a = v.arms[k] || {};
        return Object.assign({ name: k }, a);
      });
    }
    return null;
  }

  // The verdict of one segment in whatever shape /ab returns it.
  function findVerdict(doc, segment) {
    if (!doc || typeof doc !== "object") { return null; }
    if (armsOf(doc)) { return doc; }
    if (doc.verdict && typeof doc.verdict === "object") { return findVerdict(doc.verdict, segment); }
    var segs = doc.segments || doc.verdicts;
    if (Array.isArray(segs)) {
      var hit = segs.filter(function (s) { return s && s.segment === segment; })[0];
      return findVerdict(hit || segs[0], segment);
    }
    if (segs && typeof segs === "object") {
      var keys = Object.keys(segs);
      return findVerdict(segs[segment] || segs[keys[0]], segment);
    }
    return null;
  }

  function renderAb(item, doc) {
    setText("ab-item", item || "–");
    var verdictEl = $("ab-verdict");
    var v = findVerdict(doc, state.abSegment);
    var arms = armsOf(v);
    if (!arms || !arms.length) {
      verdictEl.textContent = "";
      verdictEl.className = "verdict";
      hasData("panel-ab", false);
      return;
    }
    var decision = v.decision || (doc && doc.decision) || "";
    var message = v.message || (doc && doc.message) || decision;
    var warnings = Array.isArray(v.warnings) ? v.warnings : [];
    var view = doc && doc.view ? " (" + doc.view + " counts)" : "";
    verdictEl.textContent = message + view + (warnings.length ? " — warning: " + warnings.join("; ") : "");
    verdictEl.className = "verdict " + String(decision).replace(/[^a-z_]/g, "");
    var names = arms.map(function (a) { return String(a.name || a.variant || "?"); });
    table($("ab-table"), ["variant", "impressions", "clicks", { text: "CTR", cls: "narrow-hide" },
      "posterior mean", { text: "95% credible interval", cls: "narrow-hide" },
      "chance to win", { text: "risk", cls: "narrow-hide" },
      { text: "uplift vs control (95%)", cls: "narrow-hide" }],
    arms.map(function (a, i) {
      var name = names[i];
      var isWinner = v.winner !== undefined && v.winner !== null && String(v.winner) === name;
      var ctr = num(a.ctr) !== null ? a.ctr : (num(a.impressions) ? a.clicks / a.impressions : null);
      return {
        cls: isWinner ? "winner" : "",
        cells: [
          name,
          fmtInt(a.impressions),
          fmtInt(a.clicks),
          fmtPct(ctr),
          fmtPct(a.posterior_mean),
          fmtPct(a.ci_low) + " – " + fmtPct(a.ci_high),
          fmtPct(a.chance_to_win, 1),
          fmtPct(a.risk, 3),
          // the verdict is the segment's, shown once above the table; each row its uplift
          a.is_control ? "control" : (num(a.uplift) === null ? "–" : (a.uplift >= 0 ? "+" : "") +
            fmtPct(a.uplift, 1) + " (" + fmtPct(a.uplift_ci_low, 1) + " – " + fmtPct(a.uplift_ci_high, 1) + ")"),
        ],
      };
    }));
    // each variant's image beside its name (from /series/ctr, the same item)
    var cells = $("ab-table").querySelectorAll("tbody tr td:first-child");
    Array.prototype.forEach.call(cells, function (td, i) {
      var imageId = state.variantImages[names[i]];
      if (imageId) { td.insertBefore(thumbnail(imageId, names[i]), td.firstChild); td.classList.add("with-thumb"); }
    });
    hasData("panel-ab", true);
  }

  // ---------------------------------------------------------------- why: drivers of the segment

  var WHY_EVERY = 6; // refreshes between two readings of the drivers (each is a regression fit)

  function whySegment() { return imageSegment() || "all"; }

  function effectRows(list) {
    return (list || []).map(function (e) {
      return {
        cls: e.significant ? "significant" : "",
        cells: [
          e.attribute,
          { text: (e.lift >= 0 ? "+" : "") + fmtPct(e.lift, 0), cls: e.lift >= 0 ? "good" : "bad" },
          "[" + fmtPct(e.lift_low, 0) + ", " + fmtPct(e.lift_high, 0) + "]",
          e.unit,
          fmtNum(e.q_value, 3) + (e.significant ? " ✓" : ""),
        ],
      };
    });
  }

  function renderWhy(segment, doc, reason) {
    setText("why-segment", segment === "all" ? "all segments" : segment);
    var group = doc && doc.groups && doc.groups[0];
    var rows = group ? effectRows(group.up).concat(effectRows(group.down)) : [];
    table($("why-table"), ["attribute", "CTR lift", "95% interval", { text: "per", cls: "narrow-hide" }, "q"], rows);
    if (group) {
      setText("why-hint", group.skipped ? "not estimated: " + group.skipped :
        fmtInt(group.impressions) + " impressions of " + fmtInt(group.images) + " images; variants of the same item compared, " +
        "✓ holds at a false-discovery rate of " + fmtPct(doc.q, 0));
    }
    setEmpty("panel-why", reason ? "not available: " + reason : group && group.skipped ? group.skipped : "no data yet");
    hasData("panel-why", rows.length > 0);
  }

  function refreshWhy(force) {
    if (!available("/explain")) { return Promise.resolve(null); }
    var segment = whySegment();
    if (!force && state.whyFor === segment && state.refreshes % WHY_EVERY !== 0) { return Promise.resolve(null); }
    state.whyFor = segment;
    var path = "explain/" + encodeURIComponent(segment) + "?n=4";
    return fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (state.whyFor !== segment) { return; }
      guard("why", function () {
        var ok = res.ok && res.body && res.body.available !== false;
        var why = res.ok ? (res.body && res.body.reason) : (res.body && res.body.detail);
        renderWhy(segment, ok ? res.body : null, ok ? null : String(why || "unavailable"));
      });
    }, function (err) { problem("/explain: " + (err && err.message ? err.message : String(err))); });
  }

  // ---------------------------------------------------------------- quality per audience

  function renderQuality(doc) {
    var segs = (doc && doc.available && doc.segments) || [];
    var rows = segs.filter(function (s) { return s.judged || (s.flags || []).length; }).map(function (s) {
      var flagged = (s.flags || []).length > 0;
      return {
        cls: flagged ? "flagged" : "",
        cells: [
          s.field + "=" + s.value,
          { text: flagged ? s.flags.join(", ") : "ok", cls: flagged ? "bad" : "good" },
          fmtNum(s.calibration, 2),
          fmtNum(s.ne, 3),
          { text: fmtPct(s.share, 1), cls: "narrow-hide" },
        ],
      };
    });
    rows.sort(function (a, b) { return (b.cls === "flagged") - (a.cls === "flagged"); });
    table($("quality-table"), ["audience", "flags", "calibration", "NE", { text: "share", cls: "narrow-hide" }], rows);
    var flagged = (doc && doc.flagged) || [];
    setText("quality-flags", flagged.length ? "flagged: " + flagged.join(", ") : (doc && doc.available ? "nothing flagged" : ""));
    if (doc && doc.available && doc.rules) {
      setText("quality-hint", "the newest " + fmtInt(doc.examples) + " scored impressions; flagged when calibration is outside [" +
        fmtNum(doc.rules.calibration_low, 2) + ", " + fmtNum(doc.rules.calibration_high, 2) + "] or NE beyond the model's by " +
        fmtNum(doc.rules.ne_margin, 2) + ", once judged (" + fmtInt(doc.rules.min_impressions) + " impressions, " +
        fmtInt(doc.rules.min_clicks) + " clicks)");
    }
    setEmpty("panel-quality", doc && doc.available ? "no audience value judged yet" : "no data yet");
    hasData("panel-quality", rows.length > 0);
  }

  // ---------------------------------------------------------------- item view

  function tagsText(v, doc) {
    if (!v.tags) {
      // the reason every variant shares is in the panel's hint once, not on every card
      var own = v.description_missing && v.description_missing !== doc.descriptions_unavailable;
      return "no tags" + (own ? ": " + v.description_missing : "");
    }
    return v.tags.slice(0, 3).map(function (t) { return t.label + " " + fmtPct(t.score, 0); }).join(", ");
  }

  function attributesText(v) {
    if (!v.attributes) { return ""; }
    return Object.keys(v.attributes).sort().map(function (k) {
      var a = v.attributes[k];
      return k + " " + (typeof a === "number" ? fmtNum(a, 2) : a);
    }).join(" · ");
  }

  function renderItem(item, doc) {
    setText("item-view-id", item || "–");
    var list = $("item-suggestions");
    clear(list);
    ((doc && doc.suggestions) || []).forEach(function (s) {
      list.appendChild(cell("li", s.text, "suggestion " + s.source));
    });
    if (doc && !(doc.suggestions || []).length) {
      list.appendChild(cell("li", "no suggestion yet: no segment group has a winner" +
        (doc.drivers_unavailable ? ", and no drivers (" + doc.drivers_unavailable + ")" : ""), "muted"));
    }
    var box = $("item-variants");
    clear(box);
    ((doc && doc.variants) || []).forEach(function (v) {
      var card = document.createElement("div");
      card.className = "variant-card";
      var head = document.createElement("div");
      head.className = "variant-head";
      head.appendChild(v.image_id ? thumbnail(v.image_id, v.variant) : cell("span", v.variant, "thumb missing"));
      var about = document.createElement("div");
      about.appendChild(cell("strong", v.variant + (doc.control === v.variant ? " (control)" : "")));
      about.appendChild(cell("div", tagsText(v, doc), "muted tags"));
      about.appendChild(cell("div", attributesText(v), "muted attributes"));
      head.appendChild(about);
      card.appendChild(head);
      var wrap = document.createElement("div");
      wrap.className = "scroll";
      var t = document.createElement("table");
      t.className = "compact";
      table(t, ["segment", "CTR", "predicted", { text: "impressions", cls: "narrow-hide" }], (v.segments || []).map(function (r) {
        return { cells: [r.segment, fmtPct(r.ctr, 1), fmtPct(r.predicted_ctr, 1), fmtInt(r.impressions)] };
      }));
      wrap.appendChild(t);
      card.appendChild(wrap);
      box.appendChild(card);
    });
    var hint = "click an image, or pick an item: its variants, tags, CTR per segment (predicted beside it) and what to do";
    if (doc && doc.descriptions_unavailable) { hint += " · tags: " + doc.descriptions_unavailable; }
    setText("item-hint", hint);
    hasData("panel-item", !!(doc && (doc.variants || []).length));
  }

  function refreshItem(item, force) {
    if (!item || !available("/items")) { return Promise.resolve(null); }
    if (!force && state.itemFor === item && state.refreshes % WHY_EVERY !== 0) { return Promise.resolve(null); }
    state.itemFor = item;
    return attempt("/items", getJSON("items/" + encodeURIComponent(item) + "?max_segments=6")).then(function (doc) {
      if (state.itemFor !== item) { return; }
      guard("item", function () { renderItem(item, doc); });
    });
  }

  function openItem(item) {
    state.viewItem = item;
    refreshItem(item, true).then(function () {
      var panel = $("panel-item");
      if (panel && panel.scrollIntoView) { panel.scrollIntoView({ block: "nearest" }); }
    });
  }

  // ---------------------------------------------------------------- refresh loop

  function available(prefix) {
    if (state.endpoints === null) { return true; }
    return state.endpoints.some(function (p) { return p === prefix || p.indexOf(prefix + "/") === 0; });
  }

  function attempt(label, promise) {
    return promise.then(function (doc) { return doc; }, function (err) {
      problem(label + ": " + (err && err.message ? err.message : String(err)));
      return null;
    });
  }

  function guard(label, fn) {
    try { fn(); } catch (err) { problem(label + " (render): " + (err && err.message ? err.message : String(err))); }
  }

  function variantQuery() {
    var q = "series/ctr?by=variant&minutes=" + MINUTES;
    return state.item ? q + "&item=" + encodeURIComponent(state.item) : q;
  }

  function refresh() {
    state.problems = [];
    var missing = [];
    var wantFleet = available("/fleet");
    if (!wantFleet) { missing.push("/fleet"); }
    renderTitles();
    var jobs = [
      attempt("/series/ctr", getJSON("series/ctr?by=segment&minutes=" + MINUTES + "&limit=" + state.topSegments)),
      attempt("/series/ctr", getJSON(variantQuery())),
      attempt("/series/model", getJSON("series/model")),
      wantFleet ? attempt("/fleet", getJSON("fleet")) : Promise.resolve(null),
      available("/quality") ? attempt("/quality", getJSON("quality")) : Promise.resolve(null),
    ];
    return Promise.all(jobs).then(function (docs) {
      guard("CTR by segment", function () { renderCtrSegment(docs[0]); });
      var item = null;
      guard("CTR by variant", function () { item = renderCtrVariant(docs[1]); });
      guard("model", function () { renderModel(docs[2]); });
      guard("fleet", function () { renderFleet(docs[3]); });
      guard("quality", function () { renderQuality(docs[4]); });
      var more = [];
      if (state.refreshes % IMAGES_EVERY === 0 || state.imagesFor !== imageSegment()) { more.push(refreshImages()); }
      more.push(refreshWhy(false));
      more.push(refreshItem(state.viewItem || item, false));
      if (!item || !available("/ab")) {
        if (!available("/ab")) { missing.push("/ab"); }
        guard("A/B", function () { renderAb(item, null); });
        return Promise.all(more);
      }
      // one segment, or all together (and only the busiest one beside them: each costs a verdict)
      var q = "ab/" + encodeURIComponent(item) +
        (state.abSegment ? "?segment=" + encodeURIComponent(state.abSegment) : "?max_segments=1");
      more.push(attempt("/ab", getJSON(q)).then(function (doc) {
        guard("A/B", function () { renderAb(item, doc); });
      }));
      return Promise.all(more);
    }).then(function () {
      state.refreshes += 1;
      state.lastRefresh = Date.now() / 1000;
      document.body.dataset.refreshes = String(state.refreshes);
      var status = $("status");
      var text = "updated " + new Date().toLocaleTimeString();
      if (missing.length) { text += " · not served here: " + missing.join(", "); }
      if (state.problems.length) { text += " · " + state.problems.join(" · "); }
      status.textContent = text;
      status.classList.toggle("problem", state.problems.length > 0);
    });
  }

  function loop() {
    refresh().then(null, function (err) {
      problem(String(err));
    }).then(function () {
      window.setTimeout(loop, REFRESH_S * 1000);
    });
  }

  function start() {
    setText("refresh-s", String(REFRESH_S));
    $("item-select").addEventListener("change", function (e) {
      state.item = e.target.value;
      state.viewItem = e.target.value || null;
      refresh();
    });
    // a click on an image (or its caption) opens its item in the item view
    document.querySelector("main").addEventListener("click", function (e) {
      var fig = e.target && e.target.closest ? e.target.closest("figure[data-item]") : null;
      if (fig) { openItem(fig.dataset.item); }
    });
    var smooth = $("ctr-smooth");
    smooth.value = String(state.smooth);
    if (smooth.value !== String(state.smooth)) { state.smooth = 1; smooth.value = "1"; }
    smooth.addEventListener("change", function (e) {
      state.smooth = Math.max(1, Number(e.target.value) || 1);
      refresh();
    });
    var top = $("segment-top");
    top.value = String(state.topSegments);
    if (top.value !== String(state.topSegments)) {
      var o = document.createElement("option");
      o.value = o.textContent = String(state.topSegments);
      top.appendChild(o);
      top.value = o.value;
    }
    top.addEventListener("change", function (e) {
      state.topSegments = Math.max(1, Number(e.target.value) || 5);
      refresh();
    });
    $("ab-segment").addEventListener("change", function (e) {
      state.abSegment = e.target.value;
      refresh();
    });
    renderTitles();
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(resizeCharts, 150);
    });
    // which optional endpoints this server has (another version may lack /fleet or /ab)
    attempt("/openapi.json", getJSON("openapi.json")).then(function (doc) {
      state.endpoints = doc && doc.paths ? Object.keys(doc.paths) : null;
      state.problems = [];
      loop();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
