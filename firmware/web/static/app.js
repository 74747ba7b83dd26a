// Doorline page: status polling, settings form with per-field errors, actions, event log.
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
    ["Web", [["web.listen", "Listen on (host:port, after restart)"],
             ["web.https", "HTTPS (after restart)", "bool"],
             ["web.hostnames", "Other names of this station (one per line; requests under " +
              "any name not listed here, its addresses, host name or .local are refused)",
              "lines"]]]
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
    var doc = {buttons: [], door: {codes: []}};
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

  function showEvents(events) {
    var list = $("events");
    events.forEach(function (e) {
      lastEvent = e.id;
      var rest = Object.keys(e).filter(function (k) { return ["id", "time", "type"].indexOf(k) < 0; })
        .map(function (k) { return k + "=" + (typeof e[k] === "object" ? JSON.stringify(e[k]) : e[k]); });
      var li = el("li");
      li.appendChild(el("time", {}, new Date(e.time * 1000).toLocaleTimeString()));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("strong", {}, e.type));
      li.appendChild(document.createTextNode(" " + rest.join(" ")));
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 200) list.removeChild(list.lastChild);
  }

  var polling = false;
  function poll() {
    if (polling) return;
    polling = true;
    var since = lastEvent === null ? "" : "?since=" + lastEvent;
    Promise.all([api("GET", "/api/status"), api("GET", "/api/events" + since)])
      .then(function (r) {
        showStatus(r[0].data);
        showEvents(r[1].data.events || []);
        $("st-conn").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { $("st-conn").textContent = "Connection lost; retrying…"; })
      .then(function () { polling = false; });
  }

  api("GET", "/api/config").then(function (res) {
    config = res.data;
    render(config);
    poll();
    setInterval(poll, 1500);
  });
})();
