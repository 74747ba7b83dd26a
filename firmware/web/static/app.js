// Doorline page (docs/PAGE.md), the dashboard: registration, the call, the door, the camera,
// the event timeline as sentences (live through GET /api/events/stream), simulated controls.
// Three views, one at a time (#dashboard, #setup, #settings); the forms of the other two are
// in forms.js and settings.js, loaded when first opened. All data goes in with textContent.
"use strict";
(function () {
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  function setCsrf(token) {  // a password change gives this page a new session
    csrf = token;
    document.querySelectorAll('input[name="csrf"]').forEach(function (i) { i.value = token; });
  }
  var $ = function (id) { return document.getElementById(id); };
  // shared with forms.js and settings.js (loaded when a form is opened)
  var S = {config: null,  // the last config from the server (redacted)
           board: null,   // GET /api/board: the roles of the running board
           help: {},      // /static/help.json: {"sip.registrar": {default, help}}
           view: ""};
  var lastEvent = null, status = null;
  var STORE = "doorline.setup";

  function api(method, path, body) {
    var opts = {method: method, credentials: "same-origin",
                headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"}};
    if (body !== undefined) opts.body = JSON.stringify(body);
    return fetch(path, opts).then(function (res) {
      if (res.status === 401) { location.href = "/login"; throw new Error("logged out"); }
      return res.json().catch(function () { return {}; }).then(function (data) {
        return {status: res.status, data: data};
      });
    });
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function button(text, onclick, attrs) {
    var b = el("button", Object.assign({type: "button"}, attrs || {}), text);
    b.addEventListener("click", onclick);
    return b;
  }
  function clear(node) { node.textContent = ""; return node; }
  function stored() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {done: {}}; } catch (e) { return {done: {}}; }
  }
  function remember(change) {
    var s = stored(); s.done = s.done || {}; change(s);
    try { localStorage.setItem(STORE, JSON.stringify(s)); } catch (e) { /* private mode */ }
  }
  function userOf(uri) {  // sip:flat1@example.org -> flat1
    var m = /^sips?:([^@;>]+)@/.exec(uri || "");
    return m ? m[1] : (uri || "someone");
  }
  function merge(a, b) {  // b over a; lists replaced
    if (b === null || typeof b !== "object" || Array.isArray(b)) return b;
    var out = Object.assign({}, a && typeof a === "object" && !Array.isArray(a) ? a : {});
    Object.keys(b).forEach(function (k) { out[k] = merge(out[k], b[k]); });
    return out;
  }
  function get(obj, path) {
    return path.replace(/\[(\d+)\]/g, ".$1").split(".").reduce(function (o, k) {
      return o === undefined || o === null ? undefined : o[k];
    }, obj);
  }
  function set(obj, path, value) {
    var keys = path.replace(/\[(\d+)\]/g, ".$1").split(".");
    keys.slice(0, -1).forEach(function (k, i) {
      if (obj[k] === undefined) obj[k] = /^\d+$/.test(keys[i + 1]) ? [] : {};
      obj = obj[k];
    });
    obj[keys[keys.length - 1]] = value;
  }
  function trim(s) { return s.trim(); }

  function callButtons(cfg) {
    return (cfg.buttons || []).map(function (b, i) { return [b, i]; })
      .filter(function (x) { return x[0].role !== "hangup" && x[0].role !== "exit"; });
  }
  function hasCamera() { return !!(S.board && S.board.camera); }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  // ---- actions and the test call -------------------------------------------------------
  var testing = null;  // {target, since, id, box, line, done}
  function say(text, where) { (where || $("action-msg")).textContent = text; }
  function action(path, body, done, where) {
    return api("POST", path, body).then(function (res) {
      say(res.status === 200 ? done : "Could not do it: " + (res.data.error || "HTTP " + res.status), where);
      if (res.status !== 200) errorShownAt = Date.now();
      poll();
      return res;
    });
  }
  var errorShownAt = 0;
  function testCall(target, box) {
    var line = el("p", {"class": "progress test", role: "status"}, "Calling " + target + "…");
    var old = box && box.querySelector(".test");
    if (old) box.removeChild(old);
    if (box) box.appendChild(line);
    testing = {target: target, since: Date.now() / 1000 - 1, line: line, seen: false};
    api("POST", "/api/call", {target: target}).then(function (res) {
      if (res.status !== 200) {
        outcome("could not call: " + (res.data.error || "HTTP " + res.status), "bad");
      } else testing.id = res.data.id;
      poll();
    });
    say("Calling " + target + "…");
  }
  function outcome(text, cls) {
    if (!testing || testing.done) return;
    testing.done = true;
    var t = "Test call to " + userOf(testing.target) + ": " + text;
    testing.line.textContent = t; testing.line.className = "progress test " + cls;
    say(t);
  }
  function watchTestCall(calls, events) {
    if (!testing || testing.done) return;
    (events || []).forEach(function (e) {
      if (e.type !== "call" || e.time < testing.since) return;
      if (e.call_id && testing.id && e.call_id !== testing.id) return;
      if (e.status && e.status >= 300) {
        outcome((e.reason || "failed") + " (" + e.status + ")", "bad");
      }
    });
    (calls || []).forEach(function (c) {
      if (testing.id && c.id !== testing.id) return;
      testing.seen = true;
      if (connected(c.state)) outcome("answered", "ok");
    });
    var t = testing;
    if (calls && t.seen && !calls.some(function (c) { return c.id === t.id; })) {
      setTimeout(function () { if (testing === t) outcome("ended without an answer", "bad"); }, 3000);
    }
  }
  $("btn-call").addEventListener("click", function () { testCall($("call-target").value.trim()); });
  $("btn-speaker").addEventListener("click", function () {
    action("/api/audio/test-speaker", {}, "Playing a test tone at the saved volume.");
  });

  // ---- the dashboard: registration, calls, door -----------------------------------------
  function ago(t) {
    var s = Math.max(0, Math.floor(Date.now() / 1000 - t));
    return s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h";
  }
  function clock(s) {
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60), r = s % 60;
    return (m >= 60 ? Math.floor(m / 60) + ":" + ("0" + m % 60).slice(-2) : m) + ":" + ("0" + r).slice(-2);
  }
  function regText(reg) {
    // an event names the registrar it was about; the status is about the saved one
    var where = reg.registrar || (S.config && S.config.sip.registrar) || "the registrar";
    var attempt = reg.attempt > 1 ? " attempt " + reg.attempt : "";
    var why = reg.reason || reg.error || "";
    if (reg.mode === "direct" && reg.state === "failed") {  // e.g. a configuration with errors
      return {text: "SIP is off: " + (why || "failed"), cls: "bad", direct: true, detail: ""};
    }
    if (reg.mode === "direct" || reg.state === "disabled") {
      return {text: "Direct IP (no registrar)", cls: "ok", direct: true,
              detail: S.config ? "calls reach the station at " + S.config.sip.listen : ""};
    }
    if (reg.state === "registered") return {text: "Registered with " + where, cls: "ok",
      detail: reg.since ? "since " + ago(reg.since) : ""};
    if (reg.state === "registering") return {text: "Registering…" + attempt, cls: "busy",
      detail: why};
    if (reg.state === "failed") return {text: "Not registered: " + (why || "failed"), cls: "bad",
      detail: attempt ? "retrying," + attempt : "retrying"};
    return {text: "Not registered", cls: "bad", detail: why};
  }
  function showReg(reg) {
    var r = regText(reg || {});
    $("st-reg").textContent = r.text;
    $("st-reg").className = "big " + r.cls;
    $("reg-card").className = "card reg " + r.cls;
    $("st-reg-detail").textContent = r.detail || "";
  }
  // firmware/sip/callstate.py ("confirmed": the dialog state, as older stations said)
  var STATES = {calling: "Calling…", ringing: "Ringing…", answering: "Answering…",
                active: "Connected", confirmed: "Connected", closing: "Hanging up…",
                ended: "Ended"};
  function connected(state) { return state === "active" || state === "confirmed"; }
  var cards = {};  // call id -> {box, parts}: updated in place, so focus stays on its buttons
  function relayRoles() {  // the relays the config drives (door and [[relays]]) on this board
    var mine = ["door"].concat(((S.config && S.config.relays) || []).map(function (r) { return r.role; }));
    return mine.filter(function (r, i) {
      return mine.indexOf(r) === i && (!S.board || (S.board.relays || []).indexOf(r) >= 0);
    });
  }
  function openButton(role) {
    return button("Open " + role, function () {
      action("/api/door/open", {relay: role}, "Opened the " + role + ".");
    });
  }
  function showCalls(calls) {
    var box = $("st-calls"), ids = {};
    calls.forEach(function (c) {
      ids[c.id] = true;
      var card = cards[c.id];
      if (!card) {
        card = cards[c.id] = {box: el("article", {"class": "call"}), first: Date.now() / 1000};
        var b = card.box;
        card.title = el("p", {"class": "peer"}); card.state = el("p", {"class": "call-state"});
        card.media = el("p", {"class": "badges"}); card.quality = el("p", {"class": "muted"});
        [card.title, card.state, card.media, card.quality].forEach(function (n) { b.appendChild(n); });
        var row = el("div", {"class": "row"});
        row.appendChild(button("Hang up", function () { action("/api/hangup", {}, "Hung up."); },
                               {"class": "danger"}));
        relayRoles().forEach(function (r) { row.appendChild(openButton(r)); });
        b.appendChild(row);
        box.appendChild(b);
      }
      card.started = c.started || card.first;
      card.title.textContent = (c.direction === "incoming" ? "From " : "To ") + userOf(c.peer) +
        (c.peer && userOf(c.peer) !== c.peer ? " (" + c.peer + ")" : "");
      card.stateText = STATES[c.state] || c.state;
      card.confirmed = connected(c.state);
      var stats = c.stats || {}, codec = c.codec || stats.codec;
      clear(card.media);
      if (codec) card.media.appendChild(el("span", {"class": "badge"}, codec));
      if (c.wideband || codec === "G722") card.media.appendChild(el("span", {"class": "badge hd"}, "Wideband"));
      if (c.srtp) card.media.appendChild(el("span", {"class": "badge sec"}, "SRTP"));
      var q = [];
      if (typeof stats.loss_percent === "number") q.push("Loss " + stats.loss_percent.toFixed(1) + " %");
      if (typeof stats.jitter_ms === "number") q.push("Jitter " + stats.jitter_ms.toFixed(1) + " ms");
      card.quality.textContent = q.join(" · ");
      tickCard(card);
    });
    Object.keys(cards).forEach(function (id) {
      if (!ids[id]) { box.removeChild(cards[id].box); delete cards[id]; }
    });
    $("call-idle").hidden = calls.length > 0;
    if (!calls.length && !box.querySelector(".none")) box.appendChild(el("p", {"class": "none"}, "No call."));
    if (calls.length) { var n = box.querySelector(".none"); if (n) box.removeChild(n); }
    showDoorButtons(calls.length > 0);
  }
  function tickCard(card) {
    card.state.textContent = card.stateText + (card.confirmed || card.started ?
      " · " + clock(Date.now() / 1000 - card.started) : "");
  }
  setInterval(function () { Object.keys(cards).forEach(function (id) { tickCard(cards[id]); }); }, 1000);

  var doorKey = "";
  function showDoorButtons(inCall) {  // the call card has them during a call: one of each
    var key = inCall ? "" : relayRoles().join(",");
    if (key === doorKey) return;
    doorKey = key;
    var row = clear($("door-buttons"));
    if (key) relayRoles().forEach(function (r) { row.appendChild(openButton(r)); });
  }
  function showDoor(door) {
    var dl = clear($("st-door")), relays = door.relays || {};
    if (!Object.keys(relays).length) relays = {door: door.relay || "closed"};
    function item(name, value, cls) {
      var d = el("div");
      d.appendChild(el("dt", {}, name)); d.appendChild(el("dd", {"class": cls || ""}, value));
      dl.appendChild(d);
    }
    Object.keys(relays).forEach(function (r) {
      item(r.charAt(0).toUpperCase() + r.slice(1) + " relay", relays[r] === "open" ? "Open" : "Closed",
           relays[r] === "open" ? "busy" : "");
    });
    var inputs = (S.board && S.board.inputs) || (door.contact ? ["door_contact"] : []);
    inputs.forEach(function (i) {
      if (i === "door_contact") {
        item("Door", door.contact === "open" ? (door.held_open ? "Open (held open: alarm)" : "Open")
             : door.contact === "closed" ? "Closed" : "Not reported yet",
             door.held_open ? "bad" : "");
      } else {
        var v = (door.inputs || {})[i];
        item(i.replace(/_/g, " "), v === undefined || v === null ? "Not reported yet" : String(v));
      }
    });
  }
  function showStatus(st) {
    status = st;
    showReg(st.registration);
    showCalls(st.calls || []);
    showDoor(st.door || {});
    watchTestCall(st.calls, null);
    if (!(st.calls || []).length && Date.now() - errorShownAt < 600000 &&
        /in progress/.test($("action-msg").textContent)) {
      say("");  // "a call is already in progress": not any more
    }
    if (testing && !(st.calls || []).length && /in progress/.test(testing.line.textContent)) {
      testing.line.remove();
    }
    var busy = (st.calls || []).length || /open/.test(JSON.stringify((st.door || {}).relays || {}));
    if (busy) busyUntil = Math.max(busyUntil, Date.now() + 3000);
    if (!fileErrorsShown && S.config && Object.keys(st.config_errors || {}).length) {
      fileErrorsShown = true;  // SIP is off until a corrected configuration is saved
      DL.pendingFileErrors = st.config_errors;
      say("The configuration file has errors, so SIP is off: open Settings, correct the marked " +
          "fields and save.");
    }
  }
  var fileErrorsShown = false;

  // ---- simulated controls: every role of the board ---------------------------------------
  function showSim() {
    var on = S.board && S.board.simulated;
    $("sim").hidden = !on;
    if (!on) return;
    var bx = clear($("sim-buttons")), ix = clear($("sim-inputs")), cx = clear($("sim-camera"));
    var msg = $("sim-msg");
    (S.board.buttons || []).forEach(function (role) {
      bx.appendChild(button("Press " + role, function () {
        action("/api/sim/button/" + encodeURIComponent(role), {press_ms: 100},
               "Pressed the " + role + " button.", msg);
      }));
    });
    (S.board.inputs || []).forEach(function (role) {
      var name = role.replace(/_/g, " ");
      ["open", "closed"].forEach(function (state) {
        ix.appendChild(button(name.charAt(0).toUpperCase() + name.slice(1) + " " + state, function () {
          action("/api/sim/input/" + encodeURIComponent(role), {state: state},
                 "The " + name + " is " + state + ".", msg);
        }));
      });
    });
    if (S.board.camera) {
      var img = el("img", {alt: "A picture just taken by the camera", width: "160", height: "120", hidden: ""});
      cx.appendChild(button("Take a picture", function () {
        img.src = "/api/camera/snapshot?t=" + Date.now(); img.hidden = false;
        msg.textContent = "Took a picture.";
      }));
      cx.appendChild(img);
    }
  }
  function loadBoard() {
    return api("GET", "/api/board").then(function (res) {
      if (res.status === 200) S.board = res.data;
      else {  // a station without /api/board: what the config and the status say
        S.board = {name: "", simulated: status ? !!status.simulated : false,
                 buttons: (S.config.buttons || []).map(function (b) { return b.role; })
                   .concat(["hangup", "exit"]).filter(function (r, i, a) { return a.indexOf(r) === i; }),
                 relays: ["door"].concat((S.config.relays || []).map(function (r) { return r.role; })),
                 inputs: ["door_contact"], camera: false};
      }
      $("board-name").textContent = S.board.name ? "· " + S.board.name + (S.board.simulated ? " (simulated)" : "") : "";
      showSim();
      if (S.board.camera) load(["camera.js"]);
      doorKey = "-";
      showDoorButtons(status && (status.calls || []).length > 0);
    }).catch(function () {});
  }

  // ---- the timeline: sentences, the raw JSON one click away -----------------------------
  var REASONS = {"not in answer.allow": "not in Allowed callers",
                 "untrusted source": "not from a trusted address"};
  var SETTINGS = {"answer.allow": "Allowed callers", "answer.mode": "Incoming calls",
                  "answer.schedule": "Auto-answer schedule"};
  function because(reason) { return reason ? " (" + (REASONS[reason] || reason) + ")" : ""; }
  var DOOR_BY = {web: "Opened the door from the web page", api: "Opened the door through the API",
                 mqtt: "Home Assistant opened the door (MQTT)", exit: "The exit button opened the door"};
  var CALLS = {placed: "Calling %…", established: "Connected with %",
               completed: "The call with % ended", cancelled: "Call # % cancelled",
               unanswered: "Call # % not answered", busy: "% is busy",
               failed: "Could not call %", refused: "Call # % refused",
               "hanging up": "Hanging up the call with %", "hung up": "Hung up"};
  function sentence(e) {
    var who = userOf(e.caller || e.peer);
    switch (e.type) {
      case "button":
        if (e.outcome === "call") return "The " + e.role + " button was pressed: calling " +
          (e.targets || []).map(userOf).join(", ");
        if (e.outcome === "hangup") return "The " + e.role + " button hung up";
        if (e.outcome === "quiet") return "The " + e.role + " button was pressed in quiet hours (" +
          e.schedule + "): nobody is called";
        return "The " + e.role + " button was pressed" + (e.outcome && e.outcome !== "door" ?
          ": " + e.outcome : "") + because(e.reason);
      case "door_open":
        var what = e.relay && e.relay !== "door" ? "the " + e.relay : "the door";
        if (DOOR_BY[e.by]) return DOOR_BY[e.by].replace("the door", what);
        return userOf(e.by) + " opened " + what + (e.how === "dtmf" ? " by code" : "");
      case "caller_rejected":
        return "Calls from " + who + " are refused: " + (REASONS[e.reason] || e.reason || "not allowed");
      case "call":
        if (e.outcome === "rejected") return "Refused a call from " + who + because(e.reason);
        if (e.outcome === "auto-answered") return "Answered a call from " + who;
        if (e.outcome === "ringing") return "A call from " + who + " is ringing" + because(e.reason);
        var dir = e.direction === "incoming" ? "from " : "to ";
        if (e.status && e.status >= 300) return "Call " + dir + who + " failed: " +
          (e.reason || "error") + " (" + e.status + ")";
        var said = CALLS[e.outcome];
        if (said) return said.replace("%", who).replace("#", dir) +
          (e.outcome === "completed" && e.duration_s ? " after " + clock(e.duration_s) : "") +
          (e.outcome !== "completed" ? because(e.reason) : "");
        if (e.state === "ended") return "Call " + dir + who + " ended" + because(e.reason);
        return "Call " + dir + who + ": " + (STATES[e.state] || e.outcome || e.state || "update") +
          because(e.reason);
      case "code_failed":
        return "Wrong door code from " + userOf(e.caller || "a caller") +
          (e.reason && e.reason !== "wrong code" ? because(e.reason) : "");
      case "lockout": return "Door codes locked for " + userOf(e.subject) + " for " + e.duration_s + " s";
      case "registration":
        var r = regText(e);
        return r.text + (e.state === "registering" && e.reason ? " — " + e.reason : "");
      case "auth_failed": return "Wrong admin password from " + (e.client || "somewhere");
      case "login": return "The admin logged in from " + e.client;
      case "admin_password_set":
        return "The admin password was " + (e.via === "change" ? "changed" : "set");
      case "config_saved":
        var parts = e.changed && e.changed.length ? e.changed : e.sections || [];
        return "Settings saved" + (parts.length ? " (" + parts.join(", ") + ")" : "");
      case "door_opened": return "The door was opened";
      case "door_closed": return "The door was closed" +
        (typeof e.open_s === "number" ? " after " + e.open_s + " s" : "") +
        (e.alarm === "ended" ? " (held-open alarm ended)" : "");
      case "door_held_open": return "The door has been held open for " + e.held_s + " s (alarm)";
      case "camera_token": return e.enabled ? "A new picture URL for phones was made"
        : "The picture URL for phones was turned off";
      case "rejected_summary": return "Refused " + e.count + " more attempts from " + e.source_ip;
    }
    var rest = Object.keys(e).filter(function (k) {
      return ["id", "time", "type"].indexOf(k) < 0 && e[k] !== null && e[k] !== "" && e[k] !== undefined;
    }).map(function (k) { return k.replace(/_/g, " ") + " " + (typeof e[k] === "object" ? JSON.stringify(e[k]) : e[k]); });
    var t = e.type.replace(/_/g, " ");
    return t.charAt(0).toUpperCase() + t.slice(1) + (rest.length ? ": " + rest.join(", ") : "");
  }
  function fixIt(e, li) {  // a refusal says what to do, with a button that does it
    if (e.type !== "caller_rejected" && !(e.type === "call" && e.outcome === "rejected")) return;
    var caller = e.caller;
    if (e.setting === "answer.allow" || e.reason === "not in answer.allow") {
      if (!caller || !S.config || S.config.answer.allow.indexOf(caller) >= 0) return;
      li.appendChild(document.createTextNode(" — "));
      li.appendChild(button("add", function () {
        var msg = li.querySelector(".fixed") || li.appendChild(el("span", {"class": "fixed", role: "status"}));
        var allow = S.config.answer.allow.concat([caller]);
        api("PUT", "/api/config", {answer: {allow: allow}}).then(function (res) {
          if (res.status === 200) { S.config = res.data; msg.textContent = " Added to Allowed callers."; }
          else msg.textContent = " Not added: " + JSON.stringify(res.data.errors || res.data.error);
        });
      }, {"class": "small", "aria-label": "Add " + caller + " to Allowed callers"}));
    } else if (e.setting && SETTINGS[e.setting]) {
      li.appendChild(document.createTextNode(" — "));
      var a = el("a", {href: "#settings"}, "change " + SETTINGS[e.setting]);
      a.addEventListener("click", function () { focusAfter = "f:" + e.setting; });
      li.appendChild(a);
    }
  }
  var focusAfter = null;
  function showEvents(events) {
    var list = $("events");
    events.forEach(function (e) {
      if (lastEvent !== null && e.id <= lastEvent) return;  // seen (the stream after a fetch)
      lastEvent = e.id;
      var li = el("li", {"data-id": String(e.id), "data-type": e.type});
      li.appendChild(el("time", {datetime: new Date(e.time * 1000).toISOString()},
                        new Date(e.time * 1000).toLocaleTimeString()));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", {"class": "sentence"}, sentence(e)));
      fixIt(e, li);
      if (e.snapshot) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("a", {href: "/api/snapshots/" + encodeURIComponent(e.snapshot)}, "picture"));
      }
      var raw = el("details", {"class": "raw"});
      raw.appendChild(el("summary", {}, "JSON"));
      raw.appendChild(el("pre", {}, JSON.stringify(e, null, 1)));
      li.appendChild(raw);
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 100) list.removeChild(list.lastChild);
    watchTestCall(null, events);
  }

  // ---- status polling and the event stream ----------------------------------------------
  // Status at each event and, while a call is up, a relay is open or an event came in the
  // last 3 s (or without a stream), every 1.5 s; else every 15 s.
  var polling = false, busyUntil = 0, lastPoll = 0, streaming = false, stream = null;
  function tick() {
    if (!streaming || Date.now() < busyUntil || Date.now() - lastPoll >= 15000) poll();
  }
  function poll() {
    if (polling) return;
    polling = true; lastPoll = Date.now();
    api("GET", "/api/status")
      .then(function (r) {
        showStatus(r.data);
        if (!streaming) $("st-conn").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { $("st-conn").textContent = "Connection lost; retrying…"; })
      .then(function () { polling = false; });
  }
  function pollEvents() {  // without EventSource, and to catch up
    var since = lastEvent === null ? "" : "?since=" + lastEvent;
    return api("GET", "/api/events" + since).then(function (r) { showEvents(r.data.events || []); });
  }
  function openStream() {
    if (!window.EventSource) { setInterval(pollEvents, 1500); return; }
    stream = new EventSource("/api/events/stream" + (lastEvent === null ? "" : "?since=" + lastEvent));
    stream.onopen = function () { streaming = true; $("st-conn").textContent = "Live"; };
    stream.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      showEvents([e]);
      busyUntil = Date.now() + 3000;
      poll();
    };
    stream.onerror = function () {
      streaming = false;
      $("st-conn").textContent = "Event stream lost; reconnecting…";
      if (stream.readyState === EventSource.CLOSED) {  // refused (e.g. 401, 503): try later
        stream = null;
        setTimeout(function () { pollEvents().then(openStream, openStream); }, 3000);
      }
    };
  }

  function live() { if (DL.camera) DL.camera.live(); }  // camera.js, where there is one

  // ---- views, keyboard ------------------------------------------------------------------
  var VIEWS = ["dashboard", "setup", "settings"];
  function route(ev) {
    var v = location.hash.slice(1) || "dashboard";
    if (!S.config) return;
    if (VIEWS.indexOf(v) < 0) {  // e.g. #main (the skip link): the view stays
      if (S.view) return;
      v = "dashboard";
    }
    S.view = v;
    VIEWS.forEach(function (name) {
      $("v-" + name).hidden = name !== v;
      var link = $("nav-" + name);
      if (name === v) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    });
    // one form in the page at a time: each label names one field
    VIEWS.forEach(function (name) { if (name !== v && DL[name]) DL[name].leave(); });
    var needs = {setup: ["forms.js"], settings: ["forms.js", "settings.js"]}[v] || [];
    load(needs, v).then(function () {
      if (DL[v] && S.view === v) DL[v].enter(DL.pendingFileErrors);
      var target = focusAfter && $(focusAfter);
      focusAfter = null;
      if (ev || target) (target || $("h-" + v)).focus();
    });
    live();
  }
  var loaded = {};
  function load(names, view) {  // forms.js, settings.js: loaded when first needed, in order
    return names.reduce(function (p, name) {
      return p.then(function () {
        if (!loaded[name]) loaded[name] = new Promise(function (ok, fail) {
          var s = el("script", {src: "/static/" + name + "?v=" + $("app-js").src.split("v=")[1]});
          s.onload = ok; s.onerror = fail;
          document.head.appendChild(s);
        });
        return loaded[name];
      });
    }, view === "settings" ? loadHelp() : Promise.resolve());
  }
  window.addEventListener("hashchange", route);
  $("btn-setup-skip").addEventListener("click", function () {  // before forms.js is there too
    remember(function (st) { st.dismissed = true; });
    location.hash = "#dashboard";
  });
  document.addEventListener("keydown", function (ev) {  // Escape closes the open details
    if (ev.key !== "Escape") return;
    var d = document.activeElement && document.activeElement.closest("details[open]");
    if (d) { d.open = false; d.querySelector("summary").focus(); }
  });

  function looksNew(cfg) {  // a station nobody has set up: no button rings anyone
    return !(cfg.buttons || []).some(function (b) { return (b.targets || []).length; });
  }
  var help = null;
  function loadHelp() {  // the settings' help and defaults, from docs/CONFIG.md
    help = help || fetch("/static/help.json", {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : {};
    }).catch(function () { return {}; }).then(function (h) { S.help = h || {}; });
    return help;
  }
  function useConfig(cfg) {  // the saved settings; the test call's target follows them
    S.config = cfg;
    var first = callButtons(cfg).map(function (x) { return x[0].targets[0]; }).filter(Boolean)[0];
    if (first && !$("call-target").value) $("call-target").value = first;
  }
  api("GET", "/api/config").then(function (got) {
    useConfig(got.data);
    return api("GET", "/api/status").then(function (r) { showStatus(r.data); }).then(loadBoard);
  }).then(function () {
    var s = stored();
    if (!location.hash && Object.keys((status && status.config_errors) || {}).length) {
      location.replace("#settings");  // the file's errors, each at its field
    } else if (!location.hash && !s.dismissed && looksNew(S.config)) location.replace("#setup");
    route();
    setInterval(tick, 1500);
    pollEvents().then(openStream, openStream);
  });
  var DL = window.Doorline = {S: S, $: $, api: api, el: el, button: button, clear: clear,
    stored: stored, remember: remember, merge: merge, get: get, set: set, trim: trim,
    userOf: userOf, callButtons: callButtons, hasCamera: hasCamera, plural: plural,
    regText: regText, loadBoard: loadBoard, useConfig: useConfig, testCall: testCall, say: say,
    setCsrf: setCsrf,
    status: function () { return status; },
    pendingFileErrors: null};
})();
