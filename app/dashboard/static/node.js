// Pulse node page: a smoke chart (median, min-max and median-p95 bands, points coloured
// by loss), loss and jitter charts per probe with a shared cursor, a table view, and the
// 15 s refresh of the 1 h view. Data: GET <panels data-url> (session-authenticated).
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  if (!panels || typeof uPlot === "undefined") { return; }
  var statusLine = document.getElementById("chart-status");
  var charts = {};
  window.pulseCharts = charts; // read back by the browser tests
  var BLUE = "#1f5fbf", RED = "#d0312d";

  function lossColour(loss) {
    if (loss <= 0) { return "#2e9e44"; }
    if (loss < 5) { return "#c9a400"; }
    if (loss < 20) { return "#e07000"; }
    return RED;
  }
  function unit(suffix, digits) {
    return function (u, v) { return v == null ? "—" : v.toFixed(digits) + suffix; };
  }
  function utc(ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); }
  function width(el) { return Math.max(260, el.clientWidth || 600); }

  function drawLossPoints(probeId) {
    return function (u) {
      var entry = charts[probeId], t = u.data[0], median = u.data[1];
      var loss = entry ? entry.data.series.loss : [];
      var ctx = u.ctx, r = 3 * uPlot.pxRatio, min = u.scales.x.min, max = u.scales.x.max;
      ctx.save();
      for (var i = 0; i < t.length; i++) {
        if (loss[i] == null || t[i] < min || t[i] > max) { continue; }
        var x = u.valToPos(t[i], "x", true);
        if (median[i] == null) { // nothing received: an outage mark, never a 0
          ctx.fillStyle = "rgba(208, 49, 45, 0.22)";
          ctx.fillRect(x - r, u.bbox.top, 2 * r, u.bbox.height);
          continue;
        }
        ctx.fillStyle = lossColour(loss[i]);
        ctx.beginPath();
        ctx.arc(x, u.valToPos(median[i], "y", true), r, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
    };
  }

  // Spans of the alerts that fired on this probe (or on its node), shaded behind the smoke.
  function drawAlertSpans(probeId) {
    return function (u) {
      var entry = charts[probeId], spans = entry && entry.data.alerts ? entry.data.alerts : [];
      var ctx = u.ctx, min = u.scales.x.min, max = u.scales.x.max;
      ctx.save();
      spans.forEach(function (a) {
        if (a.to < min || a.from > max) { return; }
        var x0 = u.valToPos(Math.max(a.from, min), "x", true);
        var x1 = u.valToPos(Math.min(a.to, max), "x", true);
        ctx.fillStyle = a.severity === "critical" ? "rgba(208, 49, 45, 0.12)" : "rgba(224, 112, 0, 0.12)";
        ctx.fillRect(x0, u.bbox.top, Math.max(x1 - x0, 2 * uPlot.pxRatio), u.bbox.height);
      });
      ctx.restore();
    };
  }

  function base(el, key, height) {
    return { width: width(el), height: height, tzDate: utc,
      cursor: { sync: { key: key } }, legend: { live: true } };
  }

  function makeCharts(section, probe) {
    var key = "probe-" + probe.id;
    var smokeEl = section.querySelector(".smoke"), lossEl = section.querySelector(".loss");
    var jitterEl = section.querySelector(".jitter"), ms = unit(" ms", 2);
    var smoke = new uPlot(Object.assign(base(smokeEl, key, 220), {
      scales: { y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } } },
      series: [{}, { label: "median", stroke: BLUE, width: 1.5, value: ms, points: { show: false } },
        { label: "min", stroke: "transparent", value: ms, points: { show: false } },
        { label: "max", stroke: "transparent", value: ms, points: { show: false } },
        { label: "p95", stroke: "transparent", value: ms, points: { show: false } }],
      bands: [{ series: [3, 2], fill: "rgba(31, 95, 191, 0.13)" },
        { series: [4, 1], fill: "rgba(31, 95, 191, 0.32)" }],
      axes: [{}, { label: "latency ms", size: 60 }],
      hooks: { drawClear: [drawAlertSpans(probe.id)], draw: [drawLossPoints(probe.id)] }
    }), smokeData(probe), smokeEl);
    var loss = new uPlot(Object.assign(base(lossEl, key, 110), {
      scales: { y: { range: [0, 100] } },
      series: [{}, { label: "loss", stroke: RED, fill: "rgba(208, 49, 45, 0.35)",
        value: unit(" %", 1), paths: uPlot.paths.bars({ size: [0.9, 24] }), points: { show: false } }],
      axes: [{}, { label: "loss %", size: 60 }]
    }), [probe.series.t, probe.series.loss], lossEl);
    var jitter = new uPlot(Object.assign(base(jitterEl, key, 110), {
      scales: { y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } } },
      series: [{}, { label: "jitter", stroke: "#7a4fbf", width: 1.2, value: ms, points: { show: false } }],
      axes: [{}, { label: "jitter ms", size: 60 }]
    }), [probe.series.t, probe.series.jitter], jitterEl);
    return { smoke: smoke, loss: loss, jitter: jitter, data: probe };
  }

  function smokeData(probe) {
    var s = probe.series;
    return [s.t, s.median, s.min, s.max, s.p95];
  }

  function fill(table, probe) {
    var s = probe.series;
    var head = ["time (UTC)", "median ms", "min ms", "p95 ms", "max ms", "mean ms", "loss %", "jitter ms"];
    var keys = ["median", "min", "p95", "max", "mean", "loss", "jitter"];
    var el = document.createElement("table"), thead = el.createTHead().insertRow();
    head.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; th.scope = "col"; thead.appendChild(th); });
    var body = el.createTBody();
    for (var i = s.t.length - 1; i >= 0; i--) {
      if (s.loss[i] == null && s.mean[i] == null) { continue; } // a gap marker, not a point
      var tr = body.insertRow();
      tr.insertCell().textContent = new Date(s.t[i] * 1000).toISOString().replace(".000Z", "Z");
      keys.forEach(function (k) { var c = tr.insertCell(); c.textContent = s[k][i] == null ? "—" : s[k][i]; c.className = "n"; });
    }
    table.replaceChildren(el);
  }

  function hhmm(ts) { return new Date(ts * 1000).toISOString().slice(11, 16); }
  // The shaded spans in words too (screen readers, the table view).
  function describeAlerts(section, probe) {
    var note = section.querySelector(".alert-spans");
    if (!note) {
      note = document.createElement("p");
      note.className = "alert-spans";
      section.querySelector("h2").after(note);
    }
    var spans = probe.alerts || [];
    note.hidden = spans.length === 0;
    note.textContent = spans.length ? "Alerts in this range: " + spans.map(function (a) {
      return a.rule + " (" + a.severity + ", " + hhmm(a.from) + "–" +
        (a.firing ? "now, firing" : hhmm(a.to)) + " UTC)";
    }).join("; ") : "";
  }

  function show(section, probe) {
    describeAlerts(section, probe);
    var waiting = section.querySelector(".waiting");
    var empty = probe.count === 0;
    waiting.hidden = !empty;
    section.classList.toggle("no-data", empty);
    var entry = charts[probe.id];
    if (!entry && !empty) {
      charts[probe.id] = entry = makeCharts(section, probe);
    } else if (entry) {
      entry.data = probe;
      entry.smoke.setData(smokeData(probe));
      entry.loss.setData([probe.series.t, probe.series.loss]);
      entry.jitter.setData([probe.series.t, probe.series.jitter]);
    }
    var details = section.querySelector("details.points");
    if (details.open) { fill(details.querySelector(".table-wrap"), probe); }
  }

  var loads = 0;
  function load() {
    return fetch(panels.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (!data) { return; }
        window.pulseChartData = data; // the last answer, read back by the browser tests
        data.probes.forEach(function (probe) {
          var section = document.getElementById("probe-" + probe.id);
          if (section) { show(section, probe); }
        });
        loads += 1;
        document.body.dataset.chartLoads = String(loads);
        statusLine.textContent = "Showing " + data.range + " at " + data.resolution + " resolution" +
          (data.refresh_seconds ? ", refreshed every " + data.refresh_seconds + " s" : "") +
          " · updated " + new Date().toISOString().slice(11, 19) + " UTC";
        if (data.refresh_seconds && !load.timer) {
          load.timer = window.setInterval(load, data.refresh_seconds * 1000);
        }
      })
      .catch(function (err) {
        statusLine.textContent = "Could not load the charts (" + err.message + "); retrying in 15 s.";
        if (!load.timer) { window.setTimeout(load, 15000); }
      });
  }

  panels.querySelectorAll("details.points").forEach(function (details) {
    details.addEventListener("toggle", function () {
      var section = details.closest(".panel"), entry = charts[section.dataset.probeId];
      if (details.open && entry) { fill(details.querySelector(".table-wrap"), entry.data); }
    });
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      Object.keys(charts).forEach(function (id) {
        var c = charts[id], section = document.getElementById("probe-" + id);
        ["smoke", "loss", "jitter"].forEach(function (name) {
          c[name].setSize({ width: width(section.querySelector("." + name)), height: c[name].height });
        });
      });
    }, 150);
  });
  load();
})();
