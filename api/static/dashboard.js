// bertctr live page: polls the API and draws it with the vendored uPlot.
// Plain browser JavaScript, no build step, nothing loaded from the internet.
// Every panel copes with missing data ("no data yet"); a failed request is
// caught and reported in the status line, never thrown.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var REFRESH_S = Math.max(1, Number(params.get("refresh")) || 5);
  var MINUTES = Math.min(120, Math.max(1, Number(params.get("minutes")) || 60));
  var HISTORY = 180; // throughput and lag samples kept in the page
  var PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
  ];

  var state = {
    endpoints: null, // paths of the OpenAPI document; null: unknown, try everything
    item: params.get("item") || "",
    abSegment: params.get("segment") || "",
    smooth: Math.max(1, Number(params.get("smooth")) || 1), // minutes summed per CTR point
    charts: {},
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

  function fmtAgo(epochS) {
    if (num(epochS) === null) { return "–"; }
    var s = Math.max(0, Date.now() / 1000 - epochS);
    if (s < 90) { return Math.round(s) + " s ago"; }
    if (s < 5400) { return Math.round(s / 60) + " min ago"; }
    return (s / 3600).toFixed(1) + " h ago";
  }

  function setText(id, text) { var el = $(id); if (el) { el.textContent = text; } }

  function hasData(panelId, yes) {
    var el = $(panelId);
    if (el) { el.classList.toggle("has-data", !!yes); }
  }

  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }

  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (cls) { el.className = cls; }
    return el;
  }

  function table(el, head, rows) {
    clear(el);
    var thead = document.createElement("thead");
    var tr = document.createElement("tr");
    head.forEach(function (h) { tr.appendChild(cell("th", h)); });
    thead.appendChild(tr);
    el.appendChild(thead);
    var tbody = document.createElement("tbody");
    rows.forEach(function (row) {
      var r = document.createElement("tr");
      if (row.cls) { r.className = row.cls; }
      row.cells.forEach(function (c) {
        if (c !== null && typeof c === "object") { r.appendChild(cell("td", c.text, c.cls)); }
        else { r.appendChild(cell("td", String(c))); }
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

  // ---------------------------------------------------------------- charts

  // Draws (or updates) a line chart; returns how many non-null points it shows.
  // spec: {x: [epoch s], series: [{label, values, color, width}], fmt: v -> text}
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
    if (old && old.bertctrLabels === labels) {
      old.setData(data);
      return points;
    }
    if (old) { old.destroy(); }
    var fmt = spec.fmt || function (v) { return fmtNum(v); };
    var opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: spec.height || 240,
      scales: { x: { time: true } },
      legend: { live: true },
      series: [{}].concat(spec.series.map(function (s) {
        return {
          label: s.label,
          stroke: s.color,
          width: s.width || 1.5,
          spanGaps: false,
          value: function (u, v) { return num(v) === null ? "–" : fmt(v); },
        };
      })),
      axes: [
        {},
        { size: 64, values: function (u, vals) { return vals.map(function (v) { return fmt(v); }); } },
      ],
    };
    var chart = new window.uPlot(opts, data, el);
    chart.bertctrLabels = labels;
    state.charts[id] = chart;
    return points;
  }

  function resizeCharts() {
    Object.keys(state.charts).forEach(function (id) {
      var el = $(id);
      var chart = state.charts[id];
      if (el && chart) { chart.setSize({ width: Math.max(280, el.clientWidth || 600), height: chart.height }); }
    });
  }

  // ---------------------------------------------------------------- CTR

  // CTR of each minute, or of the trailing `state.smooth` minutes (sums, not a mean of ratios)
  function ctrValues(s) {
    var k = state.smooth;
    if (k <= 1 || !Array.isArray(s.impressions) || !Array.isArray(s.clicks)) { return s.ctr || []; }
    var out = [];
    var imps = 0;
    var clicks = 0;
    for (var i = 0; i < s.impressions.length; i += 1) {
      imps += s.impressions[i] || 0;
      clicks += s.clicks[i] || 0;
      if (i >= k) {
        imps -= s.impressions[i - k] || 0;
        clicks -= s.clicks[i - k] || 0;
      }
      out.push(imps > 0 ? clicks / imps : null);
    }
    return out;
  }

  function ctrSeriesSpec(doc, totalLabel) {
    var series = [];
    if (doc.total) {
      series.push({ label: totalLabel || doc.total.name, values: ctrValues(doc.total), color: "#111111", width: 2.5 });
    }
    (doc.series || []).forEach(function (s, i) {
      series.push({ label: s.name, values: ctrValues(s), color: PALETTE[i % PALETTE.length] });
    });
    return { x: doc.t || [], series: series, fmt: function (v) { return fmtPct(v, 1); } };
  }

  function renderCtrSegment(doc) {
    var points = 0;
    if (doc && Array.isArray(doc.t) && doc.t.length) {
      points = lineChart("chart-ctr-segment", ctrSeriesSpec(doc, "all segments"));
    } else {
      lineChart("chart-ctr-segment", { x: [], series: [] });
    }
    hasData("panel-ctr-segment", points > 0);
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
      fmt: function (v) { return fmtNum(v, 3); },
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
      $("panel-encoder").querySelector(".empty").textContent = learning
        ? "no encoder status: the workers learn without image embeddings"
        : "no data yet";
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

  function storeSpec(store, fmt) {
    var names = Object.keys(store.topics).sort();
    return {
      x: store.t.slice(),
      series: names.map(function (n, i) {
        return { label: n, values: store.topics[n].slice(), color: PALETTE[i % PALETTE.length] };
      }),
      fmt: fmt,
      height: 200,
    };
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
    // throughput: processed counts are monotone, so rate = delta / time between polls
    var processed = doc.processed && typeof doc.processed === "object" ? doc.processed : {};
    var prev = state.fleetPrev;
    if (prev && now > prev.at) {
      var rates = {};
      Object.keys(processed).forEach(function (topic) {
        var cur = num(processed[topic]);
        var before = num(prev.processed[topic]);
        if (cur !== null && before !== null && cur >= before) { rates[topic] = (cur - before) / (now - prev.at); }
        else if (cur !== null) { rates[topic] = null; } // restarted counter: no rate this time
      });
      pushSample(state.throughput, now, rates);
    }
    if (!prev || now > prev.at) { state.fleetPrev = { at: now, processed: processed }; }
    var tp = lineChart("chart-throughput", storeSpec(state.throughput, function (v) { return fmtNum(v, 1); }));
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
    var lp = lineChart("chart-lag", storeSpec(state.lag, function (v) { return fmtInt(v); }));
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
    table($("ab-table"), ["variant", "impressions", "clicks", "CTR", "posterior mean", "95% credible interval",
      "chance to win", "risk", "verdict"], arms.map(function (a) {
      var name = String(a.name || a.variant || "?");
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
          isWinner ? "winner" : (decision === "winner" ? "loses" : String(decision || "–").replace(/_/g, " ")),
        ],
      };
    }));
    hasData("panel-ab", true);
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
    var jobs = [
      attempt("/series/ctr", getJSON("series/ctr?by=segment&minutes=" + MINUTES)),
      attempt("/series/ctr", getJSON(variantQuery())),
      attempt("/series/model", getJSON("series/model")),
      wantFleet ? attempt("/fleet", getJSON("fleet")) : Promise.resolve(null),
    ];
    return Promise.all(jobs).then(function (docs) {
      guard("CTR by segment", function () { renderCtrSegment(docs[0]); });
      var item = null;
      guard("CTR by variant", function () { item = renderCtrVariant(docs[1]); });
      guard("model", function () { renderModel(docs[2]); });
      guard("fleet", function () { renderFleet(docs[3]); });
      if (!item || !available("/ab")) {
        if (!available("/ab")) { missing.push("/ab"); }
        guard("A/B", function () { renderAb(item, null); });
        return null;
      }
      // one segment, or all together (and only the busiest one beside them: each costs a verdict)
      var q = "ab/" + encodeURIComponent(item) +
        (state.abSegment ? "?segment=" + encodeURIComponent(state.abSegment) : "?max_segments=1");
      return attempt("/ab", getJSON(q)).then(function (doc) {
        guard("A/B", function () { renderAb(item, doc); });
      });
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
      refresh();
    });
    var smooth = $("ctr-smooth");
    smooth.value = String(state.smooth);
    if (smooth.value !== String(state.smooth)) { state.smooth = 1; smooth.value = "1"; }
    smooth.addEventListener("change", function (e) {
      state.smooth = Math.max(1, Number(e.target.value) || 1);
      refresh();
    });
    $("ab-segment").addEventListener("change", function (e) {
      state.abSegment = e.target.value;
      refresh();
    });
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
