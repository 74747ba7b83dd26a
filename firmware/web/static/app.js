// Doorline page: status polling, settings form with per-field errors, actions, the event log
// (live through GET /api/events/stream, as sentences with the raw JSON one click away).
// All data goes into the page with textContent, never as HTML.
"use strict";
(function () {
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var $ = function (id) { return document.getElementById(id); };
  var fields = [];      // {path, kind, el}
  var config = null;    // last config from the server (redacted)
  var lastEvent = null; // id of the newest event shown
  var fileErrorsShown = false; // the config file's errors at start, marked once on the form

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
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- settings form -------------------------------------------------------------------
  var SECTIONS = [
    ["SIP", [["sip.registrar", "Registrar (host[:port], empty = direct IP)"],
             ["sip.domain", "Domain"], ["sip.username", "User name"],
             ["sip.password", "Password", "password"],
             ["sip.auth_username", "Authentication user (if not the user name)"],
             ["sip.transport", "Transport", ["udp", "tcp", "tls"]],
             ["sip.listen", "Listen on (host:port)"], ["sip.tls_ca", "TLS CA file"],
             ["sip.expires", "Registration expires (s)", "int"],
             ["sip.keepalive_s", "Keep-alive towards the registrar (s, 0 = off)", "int"],
             ["sip.display_name", "Display name"]]],
    ["Media", [["media.srtp", "SRTP", ["off", "optional", "mandatory"]],
               ["media.srtp_requires_tls", "SDES keys only over TLS", "tristate"],
               ["media.codecs", "Codecs (comma-separated, by preference)", "csv"],
               ["media.rtp_ports", "RTP ports (low-high)"]]],
    ["Buttons and ring groups", "buttons"],
    ["Door codes", [["door.pulse_ms", "Relay pulse (ms)", "int"],
                    ["door.max_failures", "Wrong codes before lockout", "int"],
                    ["door.lockout_s", "Lockout (s)", "int"],
                    ["door.hangup_on_close", "Hang up when the door closes after an opening",
                     "bool"],
                    ["door.held_open_alarm_s", "Held-open alarm after (s, 0 = off)", "int"],
                    "codes"]],
    ["Relays and schedules", [
      ["relays", 'More relays (JSON: [{"role": "gate", "pulse_ms": 1500}])', "json"],
      ["time.zone", "Time zone (IANA name, e.g. Europe/Berlin)"],
      ["time.holidays", "Holidays (YYYY-MM-DD, one per line)", "lines"],
      ["schedules", 'Schedules (JSON: [{"name": "office", "days": ["mon", "fri"], ' +
       '"times": ["08:00-18:00"]}])', "json"],
      ["answer.schedule", "Auto-answer only during (a schedule name; empty = always)"]]],
    ["Answering", [["answer.mode", "Incoming calls", ["auto", "ring", "off"]],
                   ["answer.allow", "Allowed callers (one SIP URI per line)", "lines"],
                   ["answer.max_duration_s", "Longest answered call (s)", "int"],
                   ["answer.identity", "Caller identity when registered (asserted: the PBX's)",
                    ["from", "asserted"]],
                   ["calls.follow_redirects", "Follow 3xx redirects (to button targets only)",
                    "bool"],
                   ["calls.ring_timeout_s", "Ring timeout (s)", "int"],
                   ["calls.max_duration_s", "Longest call (s)", "int"],
                   ["calls.max_calls", "Simultaneous calls", "int"]]],
    ["Audio", [["audio.speaker_volume", "Speaker volume (%)", "range:0:100:1"],
               ["audio.mic_gain_db", "Microphone gain (dB)", "range:-20:30:1"],
               ["audio.echo_cancel", "Echo cancellation", "bool"],
               ["audio.noise_suppress", "Noise suppression", "bool"],
               ["audio.agc", "Automatic gain", "bool"]]],
    ["Telling the house (MQTT, Home Assistant, webhooks)",
     [["mqtt.broker", "MQTT broker (host[:port], empty = off)"],
      ["mqtt.username", "MQTT user name"], ["mqtt.password", "MQTT password", "password"],
      ["mqtt.tls", "MQTT over TLS (certificate verified)", "bool"],
      ["mqtt.tls_ca", "MQTT TLS CA file (empty = the system's CAs)"],
      ["mqtt.topic_prefix", "Topic prefix (empty = doorline/<device id>)"],
      ["mqtt.discovery_prefix", "Home Assistant discovery prefix"],
      ["mqtt.allow_door_open", "Allow opening the door over MQTT", "bool"], "webhooks"]],
    ["Web", [["web.listen", "Listen on (host:port, after restart)"],
             ["web.https", "HTTPS (after restart)", "bool"],
             ["web.hostnames", "Other names of this station (one per line; requests under " +
              "any name not listed here, its addresses, host name or .local are refused)",
              "lines"]]],
    ["Camera", [["camera.enabled", "Use the camera (if the board has one)", "bool"],
                ["camera.width", "Width (px)", "int"], ["camera.height", "Height (px)", "int"],
                ["camera.fps", "Frames per second", "int"],
                ["camera.snapshot_on_ring", "Picture at every ring", "bool"],
                ["camera.history", "Ring pictures kept", "int"],
                ["camera.video", "Video in calls", ["offer", "off"]]]]
  ];
  var BUTTON_FIELDS = [["role", "Role"], ["targets", "Targets (one SIP URI per line)", "lines"],
    ["mode", "Ring mode", ["parallel", "sequential"]],
    ["target_timeout_s", "Ring each target for (s)", "int"],
    ["second_press", "Second press", ["ignore", "hangup"]],
    ["answer_mode", "Ask the phone to answer (RFC 5373)", ["", "auto", "manual"]],
    ["schedule_targets", 'Targets by schedule (JSON: [{"schedule": "night", "targets": [...]}])',
     "json"],
    ["quiet", "Quiet hours: ring no one during (a schedule name)"]];

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

  function field(parent, path, label, kind, value) {
    var box = el("div", {"class": "field"});
    var id = "f:" + path, input, shown = null;
    if (Array.isArray(kind)) {
      input = el("select", {id: id});
      kind.forEach(function (c) { input.appendChild(el("option", {value: c}, c)); });
      input.value = value;
    } else if (kind === "lines") {
      input = el("textarea", {id: id, rows: 2});
      input.value = (value || []).join("\n");
    } else if (kind === "json") {  // lists of tables the form has no fields for
      input = el("textarea", {id: id, rows: 2});
      input.value = JSON.stringify(value === undefined ? [] : value);
    } else if (kind === "tristate") {  // null = derived by the station (see docs/CONFIG.md)
      input = el("select", {id: id});
      [["", "automatic (yes when mandatory)"], ["true", "yes"], ["false", "no"]]
        .forEach(function (c) { input.appendChild(el("option", {value: c[0]}, c[1])); });
      input.value = value === null || value === undefined ? "" : String(value);
    } else if (kind === "bool") {
      input = el("input", {id: id, type: "checkbox"});
      input.checked = !!value;
    } else if (isRange(kind)) {  // a slider "range:min:max:step"
      var r = kind.split(":");
      input = el("input", {id: id, type: "range", min: r[1], max: r[2], step: r[3]});
      input.value = value === undefined ? "" : value;
      var shown = el("output", {"for": id}, String(input.value));
      input.addEventListener("input", function () { shown.textContent = input.value; });
    } else {
      input = el("input", {id: id, type: kind === "password" ? "password" : "text",
                           autocomplete: "off"});
      if (kind === "int") input.setAttribute("inputmode", "numeric");
      input.value = kind === "csv" ? (value || []).join(", ") : (value === undefined ? "" : value);
    }
    input.setAttribute("aria-describedby", "e:" + path);
    box.appendChild(el("label", {"for": id}, label));
    box.appendChild(input);
    if (shown) box.appendChild(shown);
    box.appendChild(el("span", {id: "e:" + path, "class": "err", "aria-live": "polite"}));
    parent.appendChild(box);
    fields.push({path: path, kind: kind, el: input});
  }

  function read(f) {
    var v = f.el.value;
    if (f.kind === "bool") return f.el.checked;
    if (f.kind === "tristate") return v === "" ? null : v === "true";
    if (f.kind === "int") return /^\s*-?\d+\s*$/.test(v) ? parseInt(v, 10) : v;
    if (isRange(f.kind)) return parseInt(v, 10);
    if (f.kind === "lines") return v.split("\n").map(trim).filter(Boolean);
    if (f.kind === "json") {
      try { return JSON.parse(v); } catch (e) { return v; }  // the station names the field
    }
    if (f.kind === "csv") return v.split(",").map(trim).filter(Boolean);
    return v;
  }
  function trim(s) { return s.trim(); }
  function isRange(kind) { return typeof kind === "string" && kind.indexOf("range:") === 0; }

  function collect() {
    var doc = {buttons: [], door: {codes: []}, webhooks: []};
    fields.forEach(function (f) { set(doc, f.path, read(f)); });
    return doc;
  }

  function listBlock(parent, title, items, render, blank) {
    items.forEach(function (item, i) {
      var fs = el("fieldset");
      fs.appendChild(el("legend", {}, title + " " + (i + 1)));
      render(fs, item, i);
      var rm = el("button", {type: "button", "class": "remove"}, "Remove " + title.toLowerCase() +
                  " " + (i + 1));
      rm.addEventListener("click", function () { relist(function (doc) { blank(doc).splice(i, 1); }); });
      fs.appendChild(rm);
      parent.appendChild(fs);
    });
    var add = el("button", {type: "button"}, "Add " + title.toLowerCase());
    add.addEventListener("click", function () { relist(function (doc) { blank(doc).push(null); }); });
    parent.appendChild(add);
  }

  function relist(change) {
    var doc = collect();
    change(doc);
    doc.buttons = doc.buttons.map(function (b) {
      return b || {role: "", targets: [], mode: "parallel", target_timeout_s: 20,
                   second_press: "ignore", schedule_targets: [], quiet: ""};
    });
    doc.door.codes = doc.door.codes.map(function (c) {
      return c || {caller: "", code: "", relay: "door", schedule: ""};
    });
    doc.webhooks = doc.webhooks.map(function (w) {
      return w || {url: "", events: [], secret: "", tls_ca: ""};
    });
    render(doc);
  }

  function render(cfg) {
    var root = $("fields");
    root.textContent = "";
    fields = [];
    SECTIONS.forEach(function (section) {
      var fs = el("fieldset");
      fs.appendChild(el("legend", {}, section[0]));
      if (section[1] === "buttons") {
        listBlock(fs, "Button", cfg.buttons || [], function (box, b, i) {
          BUTTON_FIELDS.forEach(function (d) {
            field(box, "buttons[" + i + "]." + d[0], d[1], d[2], b[d[0]]);
          });
        }, function (doc) { return doc.buttons; });
      } else {
        section[1].forEach(function (d) {
          if (d === "codes") {
            listBlock(fs, "Code", cfg.door.codes || [], function (box, c, i) {
              field(box, "door.codes[" + i + "].caller", "Caller (SIP URI)", "text", c.caller);
              field(box, "door.codes[" + i + "].code", "Code (4-12 digits)", "password", c.code);
              field(box, "door.codes[" + i + "].relay", "Opens relay", "text", c.relay || "door");
              field(box, "door.codes[" + i + "].schedule", "Only during (a schedule name)", "text",
                    c.schedule || "");
            }, function (doc) { return doc.door.codes; });
          } else if (d === "webhooks") {
            listBlock(fs, "Webhook", cfg.webhooks || [], function (box, w, i) {
              var p = "webhooks[" + i + "].";
              field(box, p + "url", "URL (http:// or https://)", "text", w.url);
              field(box, p + "events", "Event types (one per line; none = all)", "lines", w.events);
              field(box, p + "secret", "Secret (signs each POST)", "password", w.secret);
              field(box, p + "tls_ca", "HTTPS CA file (empty = the system's CAs)", "text", w.tls_ca);
            }, function (doc) { return doc.webhooks; });
          } else {
            field(fs, d[0], d[1], d[2] || "text", get(cfg, d[0]));
          }
        });
      }
      root.appendChild(fs);
    });
    var target = $("call-target");
    var first = (cfg.buttons || []).filter(function (b) { return b.targets && b.targets.length; })[0];
    if (!target.value && first) target.value = first.targets[0];
  }

  // Map "buttons[0].targets[1]" to the closest field, saying which line or item is meant.
  function showErrors(errors) {
    var general = [];
    document.querySelectorAll(".err").forEach(function (s) { s.textContent = ""; });
    document.querySelectorAll(".field.invalid").forEach(function (b) { b.classList.remove("invalid"); });
    var focused = false;
    Object.keys(errors).forEach(function (path) {
      var p = path, prefix = "", m;
      while (p && !$("e:" + p)) {
        m = /^(.*)\[(\d+)\]$/.exec(p);
        if (m) { prefix = "line " + (parseInt(m[2], 10) + 1) + ": " + prefix; p = m[1]; }
        else p = p.indexOf(".") >= 0 ? p.slice(0, p.lastIndexOf(".")) : "";
      }
      if (!p) { general.push((path || "configuration") + ": " + errors[path]); return; }
      var span = $("e:" + p);
      span.textContent = (span.textContent ? span.textContent + "; " : "") + prefix + errors[path];
      span.parentNode.classList.add("invalid");
      $("f:" + p).setAttribute("aria-invalid", "true");
      if (!focused) { $("f:" + p).focus(); focused = true; }
    });
    return general;
  }

  function saved(res, msg) {
    if (res.status === 200) {
      config = res.data;
      render(config);
      showErrors({});
      msg.textContent = "Saved.";
    } else if (res.status === 400 && res.data.errors) {
      var general = showErrors(res.data.errors);
      msg.textContent = "Not saved: please correct the marked fields. " + general.join(" ");
    } else {
      msg.textContent = "Not saved: " + (res.data.error || ("HTTP " + res.status));
    }
  }

  $("settings").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("settings-msg").textContent = "Saving…";
    api("PUT", "/api/config", collect()).then(function (res) { saved(res, $("settings-msg")); });
  });

  $("upload").addEventListener("change", function () {
    var file = this.files[0], msg = $("settings-msg");
    if (!file) return;
    file.text().then(function (text) {
      var doc;
      try { doc = JSON.parse(text); } catch (e) { msg.textContent = "Not a JSON file: " + e.message; return; }
      msg.textContent = "Uploading…";
      api("PUT", "/api/config", doc).then(function (res) { saved(res, msg); });
    });
  });

  // ---- actions -------------------------------------------------------------------------
  function action(path, body, done) {
    var msg = $("action-msg");
    api("POST", path, body).then(function (res) {
      msg.textContent = res.status === 200 ? done : (res.data.error || "HTTP " + res.status);
      poll();
    });
  }
  $("btn-call").addEventListener("click", function () {
    action("/api/call", {target: $("call-target").value}, "Calling…");
  });
  $("btn-hangup").addEventListener("click", function () { action("/api/hangup", {}, "Hung up."); });
  $("btn-door").addEventListener("click", function () { action("/api/door/open", {}, "Door opened."); });
  $("btn-speaker").addEventListener("click", function () {
    action("/api/audio/test-speaker", {}, "Playing a test tone at the saved volume.");
  });

  // ---- status and events ---------------------------------------------------------------
  function duration(s) {
    s = Math.floor(s || 0);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
  }

  function showStatus(st) {
    var reg = st.registration || {};
    $("st-reg").textContent = (reg.state || "?") + (reg.error ? " (" + reg.error + ")" : "");
    $("st-reg").className = reg.state === "registered" || reg.state === "disabled" ? "ok" : "bad";
    if (!fileErrorsShown && config && Object.keys(st.config_errors || {}).length) {
      fileErrorsShown = true;  // SIP is off until a corrected configuration is saved
      $("settings-msg").textContent = "The configuration file has errors, so SIP is off: " +
        "correct the marked fields and save. " + showErrors(st.config_errors).join(" ");
    }
    var door = st.door || {}, relays = door.relays || {};
    $("st-door").textContent = Object.keys(relays).length ? Object.keys(relays).map(function (r) {
      return r + " " + relays[r];
    }).join(" · ") : door.relay || "?";
    $("st-contact").textContent = door.contact ? door.contact +
      (door.held_open ? " (held open: alarm)" : "") : "not reported";
    $("st-contact").className = door.held_open ? "bad" : "";
    if (!$("relay-buttons").firstChild) {
      Object.keys(relays).filter(function (r) { return r !== "door"; }).forEach(function (r) {
        var btn = el("button", {type: "button"}, "Open " + r);
        btn.addEventListener("click", function () {
          action("/api/door/open", {relay: r}, "Opened " + r + ".");
        });
        $("relay-buttons").appendChild(btn);
      });
    }
    var busy = (st.calls || []).length > 0 || Object.keys(relays).some(function (r) {
      return relays[r] === "open";
    }) || door.relay === "open";
    if (busy) busyUntil = Math.max(busyUntil, Date.now() + 3000);
    $("st-uptime").textContent = duration(st.uptime_s);
    var box = $("st-calls");
    box.textContent = "";
    if (!(st.calls || []).length && $("action-msg").textContent === "Calling…") {
      $("action-msg").textContent = "";  // the call it announced is over
    }
    (st.calls || []).forEach(function (c) {
      var div = el("div", {"class": "call"});
      div.appendChild(el("strong", {"class": "call-state"}, c.state));
      div.appendChild(document.createTextNode(" " + (c.direction || "") + " " + (c.peer || "")));
      var media = [c.codec, c.srtp ? "SRTP" : "RTP"].filter(Boolean).join(", ");
      var stats = Object.keys(c.stats || {}).map(function (k) { return k + " " + c.stats[k]; });
      div.appendChild(el("div", {"class": "muted"}, media + (stats.length ? " · " + stats.join(" · ") : "")));
      box.appendChild(div);
    });
    if (!box.firstChild) box.appendChild(el("p", {}, "No call."));
    var sim = $("sim");
    sim.hidden = !st.simulated;
    if (st.simulated && config && !$("sim-buttons").firstChild) {
      config.buttons.forEach(function (b) {
        var btn = el("button", {type: "button"}, "Press " + b.role);
        btn.addEventListener("click", function () {
          action("/api/sim/button/" + encodeURIComponent(b.role), {press_ms: 100}, "Pressed " + b.role + ".");
        });
        $("sim-buttons").appendChild(btn);
      });
      ["exit", "hangup"].forEach(function (role) {
        var btn = el("button", {type: "button"}, "Press " + role);
        btn.addEventListener("click", function () {
          action("/api/sim/button/" + role, {press_ms: 100}, "Pressed " + role + ".");
        });
        $("sim-buttons").appendChild(btn);
      });
      ["open", "closed"].forEach(function (state) {
        var btn = el("button", {type: "button"}, "Door contact " + state);
        btn.addEventListener("click", function () {
          action("/api/sim/input/door_contact", {state: state}, "Door contact " + state + ".");
        });
        $("sim-inputs").appendChild(btn);
      });
    }
  }

  // ---- the event log: sentences, the raw JSON one click away ----------------------------
  function userOf(uri) {  // sip:flat1@example.org -> flat1
    var m = /^sips?:([^@;>]+)@/.exec(uri || "");
    return m ? m[1] : (uri || "someone");
  }
  var REASONS = {"not in answer.allow": "not in Allowed callers",
                 "untrusted source": "not from a trusted address"};
  function because(reason) { return reason ? " (" + (REASONS[reason] || reason) + ")" : ""; }
  var DOOR_BY = {web: "Opened the door from the web page",
                 api: "Opened the door through the API",
                 mqtt: "Home Assistant opened the door (MQTT)",
                 exit: "The exit button opened the door"};

  function sentence(e) {
    switch (e.type) {
      case "button":
        if (e.outcome === "call") return "The " + e.role + " button was pressed: calling " +
          (e.targets || []).join(", ");
        if (e.outcome === "hangup") return "The " + e.role + " button hung up";
        if (e.outcome === "door") return "The " + e.role + " button was pressed";
        if (e.outcome === "quiet") return "The " + e.role + " button was pressed in quiet hours (" +
          e.schedule + "): nobody is called";
        return "The " + e.role + " button was pressed: " + (e.outcome || "") + because(e.reason);
      case "door_open":
        var what = e.relay && e.relay !== "door" ? "the " + e.relay : "the door";
        if (DOOR_BY[e.by]) return DOOR_BY[e.by].replace("the door", what);
        return userOf(e.by) + " opened " + what + (e.how === "dtmf" ? " by code" : "");
      case "caller_rejected":
        return "Rejected a call from " + (e.caller || "an unknown caller") + because(e.reason);
      case "call":
        if (e.outcome === "rejected") return "Rejected a call from " + (e.caller || e.peer) +
          because(e.reason);
        if (e.outcome === "auto-answered") return "Answered a call from " + e.caller;
        if (e.outcome === "ringing") return "A call from " + e.caller + " is ringing" +
          because(e.reason);
        return "Call " + (e.direction === "incoming" ? "from " : "to ") +
          (e.peer || e.caller || "?") + ": " + (e.outcome || e.state || "") + because(e.reason);
      case "code_failed":
        return "Wrong door code from " + (e.caller || "a caller") +
          (e.reason && e.reason !== "wrong code" ? because(e.reason) : "");
      case "lockout":
        return "Door codes locked for " + e.subject + " for " + e.duration_s + " s";
      case "registration":
        if (e.state === "registered") return "Registered with the SIP server";
        if (e.state === "disabled") return "Direct-IP mode: no registration";
        return "Registration " + e.state + (e.error ? ": " + e.error : "");
      case "auth_failed":
        return e.client ? "Wrong admin password from " + e.client
          : "The SIP server refused the credentials" + (e.error ? ": " + e.error : "");
      case "login": return "The admin logged in from " + e.client;
      case "admin_password_set": return "The admin password was set";
      case "config_saved": case "config":
        var parts = e.sections || e.changed || [];
        return "Settings saved" + (parts.length ? " (" + parts.join(", ") + ")" : "");
      case "door_opened": return "The door was opened";
      case "door_closed": return "The door was closed" +
        (e.open_s !== undefined && e.open_s !== null ? " after " + e.open_s + " s" : "") +
        (e.alarm === "ended" ? " (held-open alarm ended)" : "");
      case "door_held_open": return "The door has been held open for " + e.held_s + " s (alarm)";
      case "rejected_summary":
        return "Rejected " + e.count + " more attempts from " + e.source_ip;
    }
    var rest = Object.keys(e).filter(function (k) { return ["id", "time", "type"].indexOf(k) < 0; })
      .map(function (k) { return k + "=" + (typeof e[k] === "object" ? JSON.stringify(e[k]) : e[k]); });
    return e.type.replace(/_/g, " ") + (rest.length ? ": " + rest.join(" ") : "");
  }

  function showEvents(events) {
    var list = $("events");
    events.forEach(function (e) {
      if (lastEvent !== null && e.id <= lastEvent) return;  // seen (stream after a fetch)
      lastEvent = e.id;
      var li = el("li", {"data-id": String(e.id), "data-type": e.type});
      li.appendChild(el("time", {}, new Date(e.time * 1000).toLocaleTimeString()));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("strong", {"class": "tag"}, e.type));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", {"class": "sentence"}, sentence(e)));
      var raw = el("details", {"class": "raw"});
      raw.appendChild(el("summary", {}, "JSON"));
      raw.appendChild(el("pre", {}, JSON.stringify(e, null, 1)));
      li.appendChild(raw);
      if (e.snapshot) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("a", {href: "/api/snapshots/" + encodeURIComponent(e.snapshot)},
                          "picture"));
      }
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 200) list.removeChild(list.lastChild);
  }

  // ---- status and the event stream ------------------------------------------------------
  // Events come live through the stream. The status is read at each event and, since call
  // statistics and the relay's return change without events, every 1.5 s while a call is up,
  // the relay is open or an event came in the last 3 s (or without a stream); else every 15 s.
  var polling = false, busyUntil = 0, lastPoll = 0;
  function tick() {
    var now = Date.now();
    if (!streaming || now < busyUntil || now - lastPoll >= 15000) poll();
  }
  function poll() {
    if (polling) return;
    polling = true;
    lastPoll = Date.now();
    api("GET", "/api/status")
      .then(function (r) {
        showStatus(r.data);
        if (!streaming) $("st-conn").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { $("st-conn").textContent = "Connection lost; retrying…"; })
      .then(function () { polling = false; });
  }

  var streaming = false, stream = null;
  function pollEvents() {  // without EventSource only
    var since = lastEvent === null ? "" : "?since=" + lastEvent;
    return api("GET", "/api/events" + since).then(function (r) { showEvents(r.data.events || []); });
  }
  function openStream() {
    if (!window.EventSource) { setInterval(pollEvents, 1500); return; }
    stream = new EventSource("/api/events/stream" + (lastEvent === null ? "" : "?since=" + lastEvent));
    stream.onopen = function () {
      streaming = true;
      $("st-conn").textContent = "Live";
    };
    stream.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      showEvents([e]);
      busyUntil = Date.now() + 3000;
      poll();  // what the event changed (a call, the relay)
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

  // ---- camera: live view only while the page is visible, the last ring, the history ---
  var camera = null;       // GET /api/camera, or null without a camera
  var liveTimer = null;
  var STREAM_RENEW_MS = 7500;  // the server ends each MJPEG response after 8 s
  var shownSnapshots = "";

  function liveOn() {
    var img = $("cam-live");
    img.src = "/api/camera/stream?t=" + Date.now();
    $("cam-live-state").textContent = "";
    if (liveTimer === null) liveTimer = setInterval(liveOn, STREAM_RENEW_MS);
  }

  function liveOff() {
    if (liveTimer !== null) { clearInterval(liveTimer); liveTimer = null; }
    $("cam-live").removeAttribute("src");  // closes the stream: the camera may stop
    $("cam-live-state").textContent = "(paused while the page is hidden)";
  }

  function showCamera(info) {
    camera = info;
    $("camera").hidden = false;
    var url = info.phone_url ? location.origin + info.phone_url : "";
    $("cam-phone").textContent = url || "Off.";
    if (document.visibilityState === "visible") liveOn(); else liveOff();
  }

  function showSnapshots(list) {
    var key = list.map(function (s) { return s.id; }).join(",");
    if (key === shownSnapshots) return;
    shownSnapshots = key;
    var box = $("cam-history");
    box.textContent = "";
    list.forEach(function (s) {
      var li = el("li");
      var img = el("img", {src: "/api/snapshots/" + encodeURIComponent(s.id), loading: "lazy",
                           alt: "Ring at " + new Date(s.time * 1000).toLocaleString()});
      li.appendChild(img);
      var what = s.event ? [s.event.role, s.event.outcome].filter(Boolean).join(" → ") : "";
      li.appendChild(el("span", {}, (what ? what + ", " : "") +
                                    new Date(s.time * 1000).toLocaleString()));
      box.appendChild(li);
    });
    var ring = $("cam-ring");
    if (list.length) {
      ring.src = "/api/snapshots/" + encodeURIComponent(list[0].id);
      ring.hidden = false;
      $("cam-ring-caption").textContent = "Last ring: " +
        (list[0].event && list[0].event.role ? list[0].event.role + ", " : "") +
        new Date(list[0].time * 1000).toLocaleString();
    }
  }

  function pollSnapshots() {
    if (camera === null) return;
    api("GET", "/api/snapshots").then(function (res) {
      showSnapshots(res.data.snapshots || []);
    }).catch(function () {});
  }

  function renewToken(enabled) {
    api("POST", "/api/camera/token", {enabled: enabled}).then(function (res) {
      if (res.status === 200) showCamera(res.data);
      else $("cam-phone").textContent = res.data.error || "Could not change the picture URL.";
    });
  }

  $("btn-token-new").addEventListener("click", function () { renewToken(true); });
  $("btn-token-off").addEventListener("click", function () { renewToken(false); });
  document.addEventListener("visibilitychange", function () {
    if (camera === null) return;
    if (document.visibilityState === "visible") liveOn(); else liveOff();
  });

  api("GET", "/api/config").then(function (res) {
    config = res.data;
    render(config);
    poll();
    setInterval(tick, 1500);
    pollEvents().then(openStream, openStream);
  });
  api("GET", "/api/camera").then(function (res) {
    if (res.status !== 200 || !res.data.present) return;  // no camera: no camera section
    showCamera(res.data);
    pollSnapshots();
    setInterval(pollSnapshots, 3000);
  }).catch(function () {});
})();
