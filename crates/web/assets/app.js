// dnsight dashboard: keyboard triage on the alerts inbox and live updates (server-sent events).
// Every page works without this file; it only saves clicks.
(function () {
  "use strict";
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var csrf = meta("csrf");
  var canAct = meta("role") === "analyst" || meta("role") === "admin";
  var live = document.getElementById("live");
  var say = function (text, link) {
    if (!live) return;
    live.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link.href; a.textContent = " " + link.text;
      live.appendChild(a);
    }
  };

  // ---- live updates
  var baseline = null, es = null;
  var listen = function () {
    if (!window.EventSource || !csrf || es) return;
    es = new EventSource("/ui/events");
    es.addEventListener("alerts", function (e) {
      var d; try { d = JSON.parse(e.data); } catch (x) { return; }
      document.querySelectorAll("#open-count").forEach(function (b) { b.textContent = d.open > 0 ? String(d.open) : ""; });
      if (baseline === null) { baseline = d.changed; return; }
      if (d.changed !== baseline && document.body.dataset.page === "alerts" && !busy) {
        say("Alerts changed.", { href: location.href, text: "Refresh (.)" });
      }
    });
  };
  // a page kept in the back/forward cache must not hold a connection (browsers allow only a
  // few per server): close the stream when the page is hidden, open it again when it is shown
  window.addEventListener("pagehide", function () { if (es) { es.close(); es = null; } });
  window.addEventListener("pageshow", listen);
  listen();

  // ---- keyboard triage
  var table = document.querySelector("table.alerts");
  if (!table) return;
  var rows = function () { return Array.prototype.slice.call(table.querySelectorAll("tbody tr:not(.gone)")); };
  var sel = -1, busy = false, undo = [];
  var todo = ["open", "flagged", "reopened"];
  var statusFilter = (new URLSearchParams(location.search).get("status") || "open,flagged,reopened");
  var select = function (i) {
    var r = rows();
    if (!r.length) return;
    sel = Math.max(0, Math.min(i, r.length - 1));
    r.forEach(function (x, j) { x.classList.toggle("sel", j === sel); });
    r[sel].scrollIntoView({ block: "nearest" });
  };
  var current = function () { var r = rows(); return sel >= 0 && sel < r.length ? r[sel] : null; };
  var field = function (n) { var f = document.querySelector('#inbox [name="' + n + '"]'); return f ? f.value : ""; };

  var act = function (row, params, label, remember) {
    if (!row || busy) return;
    busy = true;
    var id = row.dataset.id;
    params.csrf = csrf;
    fetch("/ui/alerts/" + encodeURIComponent(id) + "/action", {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(params).toString()
    }).then(function (r) { return r.json(); }).then(function (j) {
      busy = false;
      if (!j.ok) { say("Not done: " + j.error); return; }
      if (remember) undo.push({ id: id, action: params.action });
      row.dataset.status = j.after;
      var st = row.querySelector("td.status");
      if (st) st.textContent = j.after;
      var stays = statusFilter === "all" || statusFilter.split(",").indexOf(j.after) >= 0 ||
        (statusFilter === "open,flagged,reopened" && todo.indexOf(j.after) >= 0);
      if (!stays) { row.classList.add("gone"); row.classList.remove("sel"); select(sel); }
      say(label + (remember ? " — u to undo" : ""));
    }).catch(function () { busy = false; say("Not done: the server did not answer"); });
  };

  var noteBox = document.querySelector('#inbox [name="note"]');
  if (noteBox) {
    noteBox.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && noteBox.dataset.mode === "key") {
        e.preventDefault();
        var t = noteBox.value.trim();
        noteBox.dataset.mode = ""; noteBox.blur();
        if (t) act(current(), { action: "note", note: t }, "Note added", false);
        noteBox.value = "";
      } else if (e.key === "Escape") { noteBox.dataset.mode = ""; noteBox.blur(); }
    });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target && e.target.tagName;
    if (t === "INPUT" || t === "SELECT" || t === "TEXTAREA" || t === "BUTTON") return;
    var row = current();
    switch (e.key) {
      case "j": select(sel + 1); break;
      case "k": select(sel < 0 ? 0 : sel - 1); break;
      case "Enter": case "o": if (row) { var a = row.querySelector("a.open"); if (a) location.href = a.href; } break;
      case "x": if (row) { var c = row.querySelector('input[type="checkbox"]'); if (c) c.checked = !c.checked; } break;
      case ".": location.reload(); break;
      case "a": if (canAct) act(row, { action: "ack", scope: "device" }, "Acknowledged for the device", true); break;
      case "f": if (canAct) act(row, { action: "flag" }, "Flagged", true); break;
      case "b": if (canAct) act(row, { action: "block", scope: "all", target: "domain" }, "Blocked for everyone", true); break;
      case "r": if (canAct) act(row, { action: "resolve", reason: field("reason") || "benign_positive" }, "Resolved", true); break;
      case "n": if (canAct && noteBox && row) { noteBox.dataset.mode = "key"; noteBox.focus(); say("Type the note, Enter to add it to the selected alert, Esc to cancel"); } break;
      case "u":
        if (!canAct) break;
        var last = undo.pop();
        if (!last) { say("Nothing to undo"); break; }
        var back = table.querySelector('tr[data-id="' + CSS.escape(last.id) + '"]');
        if (back) { back.classList.remove("gone"); select(rows().indexOf(back)); }
        act(back, { action: last.action === "block" ? "unblock" : "reopen" }, "Undone", false);
        break;
      default: return;
    }
    e.preventDefault();
  });
  if (rows().length) select(0);
})();
