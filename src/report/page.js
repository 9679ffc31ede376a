// heapdb report: hover values, hiding series, sorting tables, and a self-check that
// every chart laid out what it drew (read back by the headless-browser test).
(function () {
  "use strict";
  var errors = [];
  var box = document.getElementById("js-errors");
  function fail(msg) {
    errors.push(msg);
    box.textContent = "This page found a problem: " + errors.join("; ");
    box.hidden = false;
    document.body.setAttribute("data-errors", String(errors.length));
  }
  window.addEventListener("error", function (e) { fail("script error: " + e.message); });

  var UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function fmtBytes(v) {
    var neg = v < 0, x = Math.abs(v), u = 0;
    while (x >= 1024 && u + 1 < UNITS.length) { x /= 1024; u++; }
    var s = u === 0 ? x.toFixed(0) : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
    return (neg ? "-" : "") + s + " " + UNITS[u];
  }
  function fmtCount(v) {
    return Number.isInteger(v) ? v.toLocaleString("en-US") : String(Math.round(v * 1000) / 1000);
  }
  function fmtSeconds(s) {
    if (s === 0) return "0 s";
    if (Math.abs(s) < 1) return String(Math.round(s * 1e5) / 1e2) + " ms";
    return String(Math.round(s * 100) / 100) + " s";
  }
  function fmt(unit, v) {
    if (unit === "bytes") return fmtBytes(v);
    if (unit === "s") return fmtSeconds(v);
    if (unit === "ms") return fmtSeconds(v / 1000);
    return fmtCount(v);
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  var tip = document.getElementById("tip");
  function showTip(ev, html) {
    tip.innerHTML = html;
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 14;
    if (y + tip.offsetHeight > window.innerHeight) y = ev.clientY - tip.offsetHeight - 14;
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }
  function hideTip() { tip.hidden = true; }

  // Self-check: every element that carries data has a box (charts in closed sections
  // are opened for the measurement, then closed again).
  var closed = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
  closed.forEach(function (d) { d.open = true; });
  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var drawn = 0;
    fig.querySelectorAll("[data-mark]").forEach(function (m) {
      var b = m.getBBox();
      if (b.width > 0 || b.height > 0) drawn++;
    });
    fig.setAttribute("data-drawn", String(drawn));
    var want = Number(fig.getAttribute("data-marks"));
    if (drawn !== want) fail(fig.id + ": " + drawn + " of " + want + " chart elements were laid out");
  });
  closed.forEach(function (d) { d.open = false; });

  var SVGNS = "http://www.w3.org/2000/svg";
  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var svg = fig.querySelector("svg");
    var dataEl = fig.querySelector("script.chart-data");
    if (!svg || !dataEl) return;
    var data = JSON.parse(dataEl.textContent);
    var legend = fig.querySelector(".legend");
    if (legend) {
      legend.addEventListener("click", function (e) {
        var b = e.target.closest("button");
        if (!b) return;
        var i = b.getAttribute("data-series");
        var on = b.getAttribute("aria-pressed") !== "true";
        b.setAttribute("aria-pressed", on ? "true" : "false");
        svg.querySelectorAll('[data-series="' + i + '"]').forEach(function (g) { g.classList.toggle("off", !on); });
      });
    }
    function visible(i) {
      var g = svg.querySelector('.series[data-series="' + i + '"]');
      return !g || !g.classList.contains("off");
    }
    var fr = data.frame; // x min, x max, y max, width, height, left, right, top, bottom
    var guide = document.createElementNS(SVGNS, "line");
    guide.setAttribute("class", "hoverline");
    guide.setAttribute("y1", fr[7]);
    guide.setAttribute("y2", fr[4] - fr[8]);
    guide.style.display = "none";
    svg.appendChild(guide);
    function hide() { guide.style.display = "none"; hideTip(); }
    svg.addEventListener("mousemove", function (ev) {
      var pt = svg.createSVGPoint();
      pt.x = ev.clientX;
      pt.y = ev.clientY;
      var ctm = svg.getScreenCTM();
      if (!ctm) return;
      var p = pt.matrixTransform(ctm.inverse());
      var left = fr[5], right = fr[3] - fr[6];
      if (p.x < left || p.x > right) { hide(); return; }
      var x = fr[0] + (p.x - left) / (right - left) * (fr[1] - fr[0]);
      var lines = [];
      if (data.kind === "bars") {
        var k = -1;
        for (var i = 0; i < data.starts.length; i++) {
          if (data.starts[i] <= x && x < data.starts[i] + data.width) { k = i; break; }
        }
        if (k < 0) { hide(); return; }
        lines.push("<b>" + esc(fmtSeconds(data.starts[k])) + " to " + esc(fmtSeconds(data.starts[k] + data.width)) + "</b>");
        data.series.forEach(function (s, si) {
          if (visible(si)) lines.push(esc(s.label) + ": " + esc(fmt(data.yunit, s.values[k])));
        });
      } else {
        lines.push("<b>" + esc(fmt(data.xunit, x)) + "</b>");
        data.series.forEach(function (s, si) {
          if (!visible(si) || !s.points.length) return;
          // The last point at or before x (steps hold their value until the next).
          var lo = 0, hi = s.points.length - 1;
          if (s.points[0][0] > x) return;
          while (lo < hi) {
            var mid = (lo + hi + 1) >> 1;
            if (s.points[mid][0] <= x) lo = mid; else hi = mid - 1;
          }
          lines.push(esc(s.label) + ": " + esc(fmt(data.yunit, s.points[lo][1])));
        });
      }
      guide.setAttribute("x1", p.x);
      guide.setAttribute("x2", p.x);
      guide.style.display = "";
      showTip(ev, lines.join("<br>"));
    });
    svg.addEventListener("mouseleave", hide);
  });

  // Tables sort on a header click (or Enter), by the exact values in data-v.
  document.querySelectorAll("table th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    function sort() {
      var table = th.closest("table");
      var body = table.tBodies[0];
      var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var num = th.getAttribute("data-sort") === "num";
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > idx; });
      rows.sort(function (a, b) {
        var va = a.cells[idx].getAttribute("data-v") || "", vb = b.cells[idx].getAttribute("data-v") || "";
        var c = num ? (Number(va) || 0) - (Number(vb) || 0) : va.localeCompare(vb);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });

  // How wide the page is laid out against the window (a narrow window must not need a
  // sideways scroll of the whole page; wide tables scroll inside their own box).
  document.body.setAttribute("data-width", document.documentElement.scrollWidth + "/" + window.innerWidth);
  document.body.setAttribute("data-ready", errors.length ? "error" : "1");
})();
