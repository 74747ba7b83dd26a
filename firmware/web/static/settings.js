// Doorline page: the settings view (#settings), grouped, roles offered from the board, the
// help and default of each field from help.json, uploads marked field by field.
"use strict";
(function (DL) {
  var S = DL.S, $ = DL.$, api = DL.api, el = DL.el, button = DL.button, clear = DL.clear;
  var merge = DL.merge, get = DL.get, set = DL.set, trim = DL.trim, plural = DL.plural;
  var F = DL.forms, field = F.field, collect = F.collect, afterSave = F.afterSave,
    hasCamera = DL.hasCamera, listBlock = F.listBlock, codeFields = F.codeFields;
  var ALLOW_NOTE = F.ALLOW_NOTE, CODES_NOTE = F.CODES_NOTE;
  var settingsForm = {prefix: "f:", fields: [], lists: []};
  settingsForm.saved = function () {
    DL.pendingFileErrors = null;  // the file's errors are gone with the first save
    if (S.view === "settings") settingsForm.draw();
  };

  // ---- the settings view ---------------------------------------------------------------
  var SECTIONS = [
    ["Registration (SIP)", [["sip.registrar", "Registrar (host[:port], empty = direct IP)"],
      ["sip.domain", "Domain"], ["sip.username", "User name"],
      ["sip.password", "Password", "password"],
      ["sip.auth_username", "Authentication user (if not the user name)"],
      ["sip.transport", "Transport", ["udp", "tcp", "tls"]],
      ["sip.listen", "Listen on (host:port)"], ["sip.tls_ca", "TLS CA file"],
      ["sip.expires", "Registration expires (s)", "int"],
      ["sip.keepalive_s", "Keep-alive towards the registrar (s, 0 = off)", "int"],
      ["sip.display_name", "Display name"]]],
    ["Buttons", "buttons"],
    ["Answering", [["answer.mode", "Incoming calls", ["auto", "ring", "off"]],
      ["answer.allow", "Allowed callers (one SIP URI per line)", "lines", ALLOW_NOTE],
      ["answer.max_duration_s", "Longest auto-answered call (s)", "int"],
      ["answer.identity", "Caller identity when registered", ["from", "asserted"]],
      ["answer.schedule", "Auto-answer only during (a schedule name; empty = always)"]]],
    ["Calls", [["calls.ring_timeout_s", "Ring timeout (s)", "int"],
      ["calls.max_duration_s", "Longest call (s)", "int"],
      ["calls.max_calls", "Simultaneous calls", "int"],
      ["calls.follow_redirects", "Follow 3xx redirects (to button targets only)", "bool"],
      ["calls.conference", "Conference: allowed callers join a call in progress", "bool"],
      ["calls.max_parties", "Conference parties at most", "int"]]],
    ["Door and codes", [["door.pulse_ms", "Relay pulse (ms)", "int"],
      ["door.max_failures", "Wrong codes before lockout", "int"],
      ["door.lockout_s", "Lockout (s)", "int"],
      ["door.hangup_on_close", "Hang up when the door closes after an opening", "bool"],
      ["door.held_open_alarm_s", "Held-open alarm after (s, 0 = off)", "int"], "codes"]],
    ["Relays, time and schedules", ["relays",
      ["time.zone", "Time zone (IANA name, e.g. Europe/Berlin)"],
      ["time.holidays", "Holidays (YYYY-MM-DD, one per line)", "lines"],
      ["schedules", 'Schedules (JSON: [{"name": "office", "days": ["mon", "fri"], ' +
       '"times": ["08:00-18:00"]}])', "json"]]],
    ["Media", [["media.srtp", "SRTP", ["off", "optional", "mandatory"]],
      ["media.srtp_requires_tls", "SDES keys only over TLS", "tristate"],
      ["media.codecs", "Codecs (comma-separated, by preference)", "csv"],
      ["media.rtp_ports", "RTP ports (low-high)"]]],
    ["Audio", [["audio.speaker_volume", "Speaker volume (%)", "range:0:100:1"],
      ["audio.mic_gain_db", "Microphone gain (dB)", "range:-20:30:1"],
      ["audio.echo_cancel", "Echo cancellation", "bool"],
      ["audio.noise_suppress", "Noise suppression", "bool"],
      ["audio.agc", "Automatic gain", "bool"]]],
    ["Camera", [["camera.enabled", "Use the camera", "bool"],
      ["camera.width", "Width (px)", "int"], ["camera.height", "Height (px)", "int"],
      ["camera.fps", "Frames per second", "int"],
      ["camera.snapshot_on_ring", "Picture at every ring", "bool"],
      ["camera.history", "Ring pictures kept", "int"],
      ["camera.video", "Video in calls", ["offer", "off"]]]],
    ["Home (MQTT, Home Assistant, webhooks)", [
      ["mqtt.broker", "MQTT broker (host[:port], empty = off)"],
      ["mqtt.username", "MQTT user name"], ["mqtt.password", "MQTT password", "password"],
      ["mqtt.tls", "MQTT over TLS (certificate verified)", "bool"],
      ["mqtt.tls_ca", "MQTT TLS CA file (empty = the system's CAs)"],
      ["mqtt.topic_prefix", "Topic prefix (empty = doorline/<device id>)"],
      ["mqtt.discovery_prefix", "Home Assistant discovery prefix"],
      ["mqtt.allow_door_open", "Allow opening the door over MQTT", "bool"], "webhooks"]],
    ["Web", [["web.listen", "Listen on (host:port, after restart)"],
      ["web.https", "HTTPS (after restart)", "bool"],
      ["web.hostnames", "Other names of this station (one per line)", "lines"]]]
  ];
  var BUTTON_FIELDS = [["role", "Role", "role:buttons"],
    ["targets", "Targets (one SIP URI per line)", "lines"],
    ["mode", "Ring mode", ["parallel", "sequential"]],
    ["target_timeout_s", "Ring each target for (s)", "int"],
    ["second_press", "Second press", ["ignore", "hangup"]],
    ["answer_mode", "Ask the phone to answer (RFC 5373)", ["", "auto", "manual"]],
    ["schedule_targets", 'Targets by schedule (JSON: [{"schedule": "night", "targets": [...]}])', "json"],
    ["quiet", "Quiet hours: ring no one during (a schedule name)"]];

  function buttonFields(form, box, b, p, only) {
    BUTTON_FIELDS.forEach(function (d) {
      if (!only || only.indexOf(d[0]) >= 0) field(form, box, p + "." + d[0], d[1], d[2], b[d[0]]);
    });
  }

  settingsForm.draw = function (values) {
    var cfg = merge(S.config, values || {});
    var root = clear($("fields")), groups = clear($("groups"));
    settingsForm.fields = []; settingsForm.lists = [];
    SECTIONS.forEach(function (section, n) {
      if (section[0] === "Camera" && !hasCamera()) return;
      var fs = el("fieldset", {id: "g" + n});
      fs.appendChild(el("legend", {}, section[0]));
      var li = el("li"), a = el("a", {href: "#g" + n}, section[0]);
      a.addEventListener("click", function (ev) {
        ev.preventDefault(); fs.scrollIntoView(); var f = fs.querySelector("input,select,textarea");
        if (f) f.focus();
      });
      li.appendChild(a); groups.appendChild(li);
      var items = section[1] === "buttons" ? ["buttons"] : section[1];
      items.forEach(function (d) {
        if (d === "buttons") {
          listBlock(settingsForm, fs, "Button", "buttons", cfg.buttons, function (box, b, p) {
            buttonFields(settingsForm, box, b, p);
          });
        } else if (d === "codes") {
          fs.appendChild(el("p", {"class": "note"}, CODES_NOTE));
          listBlock(settingsForm, fs, "Code", "door.codes", cfg.door.codes, function (box, c, p) {
            codeFields(settingsForm, box, c, p);
          });
        } else if (d === "relays") {
          listBlock(settingsForm, fs, "Relay", "relays", cfg.relays, function (box, r, p) {
            field(settingsForm, box, p + ".role", "Relay role", "role:relays", r.role);
            field(settingsForm, box, p + ".pulse_ms", "Pulse (ms)", "int", r.pulse_ms);
          });
        } else if (d === "webhooks") {
          listBlock(settingsForm, fs, "Webhook", "webhooks", cfg.webhooks, function (box, w, p) {
            field(settingsForm, box, p + ".url", "URL (http:// or https://)", "text", w.url);
            field(settingsForm, box, p + ".events", "Event types (one per line; none = all)", "lines", w.events);
            field(settingsForm, box, p + ".secret", "Secret (signs each POST)", "password", w.secret);
            field(settingsForm, box, p + ".tls_ca", "HTTPS CA file (empty = the system's CAs)", "text", w.tls_ca);
          });
        } else {
          field(settingsForm, fs, d[0], d[1], d[2] || "text", get(cfg, d[0]), d[3]);
        }
      });
      root.appendChild(fs);
    });
  };

  function saveSettings(doc, msg) {
    msg.textContent = "Saving…";
    return api("PUT", "/api/config", doc).then(function (res) {
      return afterSave(settingsForm, res, msg, $("settings-summary"));
    });
  }
  $("settings").addEventListener("submit", function (ev) {
    ev.preventDefault();
    saveSettings(collect(settingsForm), $("settings-msg"));
  });
  $("upload").addEventListener("change", function () {
    var file = this.files[0], msg = $("settings-msg");
    if (!file) return;
    file.text().then(function (text) {
      var doc;
      try { doc = JSON.parse(text); } catch (e) { msg.textContent = "Not a JSON file: " + e.message; return; }
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
        msg.textContent = "Not saved: the file must hold one JSON object."; return;
      }
      settingsForm.draw(doc);  // the file's values in the form, so each error has its field
      saveSettings(doc, msg);
    });
  });

  // The admin password: every other session ends; this page gets a new one (and CSRF token).
  function passwordForm() {
    var box = clear($("password-box")), form = el("form", {novalidate: ""});
    box.appendChild(el("h3", {}, "Admin password"));
    [["pw-current", "Current password", "current-password"],
     ["pw-new", "New password (at least 10 characters)", "new-password"],
     ["pw-repeat", "Repeat the new password", "new-password"]].forEach(function (d) {
      form.appendChild(el("label", {"for": d[0]}, d[1]));
      form.appendChild(el("input", {id: d[0], type: "password", autocomplete: d[2], maxlength: "256"}));
    });
    var msg = el("p", {role: "status", id: "pw-msg"});
    form.appendChild(el("button", {type: "submit"}, "Change password"));
    form.appendChild(msg);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if ($("pw-new").value !== $("pw-repeat").value) {
        msg.textContent = "Not changed: the two new passwords differ."; return;
      }
      api("POST", "/api/password", {current: $("pw-current").value, password: $("pw-new").value})
        .then(function (res) {
          if (res.status === 200 && res.data.csrf) DL.setCsrf(res.data.csrf);
          msg.textContent = res.status === 200 ? "Password changed: every other session is logged out."
            : "Not changed: " + (res.data.error || "HTTP " + res.status) + ".";
          if (res.status === 200) form.reset();
        });
    });
    box.appendChild(form);
  }

  $("btn-save").disabled = $("upload").disabled = false;  // usable once they do something
  DL.settings = {
    enter: function (fileErrors) {
      settingsForm.draw();
      passwordForm();
      if (!fileErrors) return;
      var items = F.mark(settingsForm, fileErrors, "err");
      F.summary($("settings-summary"), "The configuration file has " + plural(items.length, "error") +
                ", so SIP is off: correct " + (items.length === 1 ? "it" : "them") + " and save",
                items, "invalid");
    },
    leave: function () { clear($("fields")); clear($("password-box")); settingsForm.fields = []; }
  };
})(window.Doorline);
