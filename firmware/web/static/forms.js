// Doorline page: the field engine (one for the checklist and the settings; every error and
// warning of a save marked at its field, with a summary of links) and the first-setup
// checklist (#setup). Loaded by app.js when first needed; all data goes in with textContent.
"use strict";
(function (DL) {
  var S = DL.S, $ = DL.$, api = DL.api, el = DL.el, button = DL.button, clear = DL.clear;
  var merge = DL.merge, get = DL.get, set = DL.set, trim = DL.trim, plural = DL.plural;
  var stored = DL.stored, remember = DL.remember, callButtons = DL.callButtons;
  var regText = DL.regText, loadBoard = DL.loadBoard, testCall = DL.testCall;
  var useConfig = DL.useConfig;
  var stepForm = {prefix: "c:", fields: [], lists: []};

  var ALLOW_NOTE = "A door code works only for a caller listed here.";
  var CODES_NOTE = "A code works only for a caller in Allowed callers (Answering).";
  function codeFields(form, box, c, p) {
    field(form, box, p + ".caller", "Caller (SIP URI)", "text", c.caller,
          "Must also be in Allowed callers.");
    field(form, box, p + ".code", "Code (4-12 digits)", "password", c.code);
    field(form, box, p + ".relay", "Opens relay", "role:relays", c.relay || "door");
    field(form, box, p + ".schedule", "Only during (a schedule name)", "text", c.schedule || "");
  }
  // ---- fields: one engine for the settings and the checklist ----------------------------
  var ROLE_KINDS = {"role:buttons": "button", "role:relays": "relay", "role:inputs": "input"};
  function roles(kind) {
    var list = S.board ? S.board[kind.slice(5)] || [] : [];
    return kind === "role:buttons" ? list.filter(function (r) { return r !== "exit"; }) : list;
  }
  function helpFor(path) {
    var key = path.replace(/\[\d+\]/g, "");
    return S.help[key] || S.help[key.slice(0, key.lastIndexOf("."))] || null;
  }
  function field(form, parent, path, label, kind, value, note) {
    var box = el("div", {"class": "field"});
    var id = form.prefix + path, input, shown = null;
    if (Array.isArray(kind) || ROLE_KINDS[kind]) {
      var choices = Array.isArray(kind) ? kind : roles(kind);
      input = el("select", {id: id});
      choices.forEach(function (c) { input.appendChild(el("option", {value: c}, c || "(none)")); });
      if (value && choices.indexOf(value) < 0) {  // kept, so saving says what is wrong
        input.appendChild(el("option", {value: value}, value + " (not on this board)"));
      }
      input.value = value === undefined || value === null ? choices[0] || "" : value;
    } else if (kind === "lines") {
      input = el("textarea", {id: id, rows: 2});
      input.value = (value || []).join("\n");
    } else if (kind === "json") {  // lists of tables the form has no fields for
      input = el("textarea", {id: id, rows: 2});
      input.value = JSON.stringify(value === undefined ? [] : value);
    } else if (kind === "tristate") {  // null = derived by the station (docs/CONFIG.md)
      input = el("select", {id: id});
      [["", "automatic (yes when mandatory)"], ["true", "yes"], ["false", "no"]]
        .forEach(function (c) { input.appendChild(el("option", {value: c[0]}, c[1])); });
      input.value = value === null || value === undefined ? "" : String(value);
    } else if (kind === "bool") {
      input = el("input", {id: id, type: "checkbox"});
      input.checked = !!value;
    } else if (/^range:/.test(kind)) {  // "range:min:max:step"
      var r = kind.split(":");
      input = el("input", {id: id, type: "range", min: r[1], max: r[2], step: r[3]});
      input.value = value === undefined ? "" : value;
      shown = el("output", {"for": id}, String(input.value));
      input.addEventListener("input", function () { shown.textContent = input.value; });
    } else {
      input = el("input", {id: id, type: kind === "password" ? "password" : "text",
                           autocomplete: "off"});
      if (kind === "int") input.setAttribute("inputmode", "numeric");
      input.value = kind === "csv" ? (value || []).join(", ") : (value === undefined || value === null ? "" : value);
    }
    var described = ["e:" + id, "w:" + id];
    box.appendChild(el("label", {"for": id}, label));
    box.appendChild(input);
    if (shown) box.appendChild(shown);
    box.appendChild(el("span", {id: "e:" + id, "class": "err"}));
    box.appendChild(el("span", {id: "w:" + id, "class": "warn"}));
    var h = helpFor(path);
    if (note || h) {
      var text = (note ? note + " " : "") + (h && h.help ? h.help : "");
      if (text.length > 240) text = text.slice(0, 236).replace(/\s\S*$/, "") + " …";
      var p = el("p", {id: "h:" + id, "class": "help"}, text);
      if (h && h.default !== undefined && h.default !== "") {
        var d = h.default === '""' ? "empty" : h.default.replace(/^"(.*)"$/, "$1");
        p.insertBefore(el("span", {"class": "default"}, "Default: " + d + ". "), p.firstChild);
      }
      box.appendChild(p);
      described.push("h:" + id);
    }
    input.setAttribute("aria-describedby", described.join(" "));
    parent.appendChild(box);
    form.fields.push({path: path, kind: kind, el: input, label: label});
    return input;
  }
  function read(f) {
    var v = f.el.value;
    if (f.kind === "bool") return f.el.checked;
    if (f.kind === "tristate") return v === "" ? null : v === "true";
    if (f.kind === "int") return /^\s*-?\d+\s*$/.test(v) ? parseInt(v, 10) : v;
    if (/^range:/.test(f.kind)) return parseInt(v, 10);
    if (f.kind === "lines") return v.split("\n").map(trim).filter(Boolean);
    if (f.kind === "json") { try { return JSON.parse(v); } catch (e) { return v; } }
    if (f.kind === "csv") return v.split(",").map(trim).filter(Boolean);
    return v;
  }
  function collect(form) {
    var doc = {};
    form.lists.forEach(function (p) { set(doc, p, []); });
    form.fields.forEach(function (f) { if (!f.el.disabled) set(doc, f.path, read(f)); });
    return doc;
  }
  var BLANK = {
    buttons: {role: "call", targets: [], mode: "parallel", target_timeout_s: 20,
              second_press: "ignore", answer_mode: "", schedule_targets: [], quiet: ""},
    "door.codes": {caller: "", code: "", relay: "door", schedule: ""},
    relays: {role: "gate", pulse_ms: 1500},
    webhooks: {url: "", events: [], secret: "", tls_ca: ""}
  };
  function listBlock(form, parent, title, listPath, items, renderItem) {
    form.lists.push(listPath);
    var box = el("div", {"class": "list", id: form.prefix + listPath});
    (items || []).forEach(function (item, i) {
      var fs = el("fieldset");
      fs.appendChild(el("legend", {}, title + " " + (i + 1)));
      renderItem(fs, item || {}, listPath + "[" + i + "]");
      fs.appendChild(button("Remove " + title.toLowerCase() + " " + (i + 1), function () {
        relist(form, function (doc) { get(doc, listPath).splice(i, 1); });
      }, {"class": "remove"}));
      box.appendChild(fs);
    });
    box.appendChild(button("Add " + title.toLowerCase(), function () {
      relist(form, function (doc) {
        var blank = Object.assign({}, BLANK[listPath]);
        if (listPath === "buttons") {  // the first board role not taken yet
          var used = get(doc, "buttons").map(function (b) { return b.role; });
          blank.role = roles("role:buttons").filter(function (r) {
            return used.indexOf(r) < 0 && r !== "hangup";
          })[0] || "call";
        }
        get(doc, listPath).push(blank);
      });
      var n = (get(collect(form), listPath) || []).length;  // the new entry's first field
      var first = form.fields.filter(function (f) {
        return f.path.indexOf(listPath + "[" + (n - 1) + "].") === 0;
      })[0];
      if (first) first.el.focus();
    }));
    parent.appendChild(box);
  }
  function relist(form, change) {
    var doc = collect(form);
    change(doc);
    form.draw(doc);
  }

  // ---- errors and warnings at their fields, with a summary of links ---------------------
  function fieldFor(form, path) {  // "buttons[0].targets[1]" -> the targets field, "line 2: "
    var p = path, prefix = "", m;
    var has = function (q) { return form.fields.some(function (f) { return f.path === q; }); };
    while (p && !has(p)) {
      m = /^(.*)\[(\d+)\]$/.exec(p);
      if (m) { prefix = "line " + (parseInt(m[2], 10) + 1) + ": " + prefix; p = m[1]; }
      else p = p.indexOf(".") >= 0 ? p.slice(0, p.lastIndexOf(".")) : "";
    }
    var f = form.fields.filter(function (x) { return x.path === p; })[0];
    return f ? {f: f, prefix: prefix} : null;
  }
  function unmark(form, cls) {
    form.fields.forEach(function (f) {
      $((cls === "err" ? "e:" : "w:") + f.el.id).textContent = "";
      f.el.parentNode.classList.remove(cls === "err" ? "invalid" : "warned");
      if (cls === "err") f.el.removeAttribute("aria-invalid");
    });
  }
  function legendOf(f) {  // "Button 2 · Role"
    var fs = f.el.closest("fieldset"), lg = fs && fs.querySelector("legend");
    return (lg ? lg.textContent + " · " : "") + f.label;
  }
  // Marks each message at its field; returns [{text, f}] for the summary.
  function mark(form, messages, cls) {
    unmark(form, cls);
    return Object.keys(messages || {}).map(function (path) {
      var hit = fieldFor(form, path), text = messages[path];
      if (!hit) return {text: (path || "configuration") + ": " + text, f: null};
      var span = $((cls === "err" ? "e:" : "w:") + hit.f.el.id);
      span.textContent = (span.textContent ? span.textContent + "; " : "") + hit.prefix + text;
      hit.f.el.parentNode.classList.add(cls === "err" ? "invalid" : "warned");
      if (cls === "err") hit.f.el.setAttribute("aria-invalid", "true");
      return {text: legendOf(hit.f) + ": " + hit.prefix + text, f: hit.f};
    });
  }
  function summary(box, title, items, cls) {
    clear(box);
    box.hidden = !items.length;
    if (!items.length) return;
    box.className = "summary " + cls;
    box.appendChild(el("h3", {}, title));
    var ul = el("ul");
    items.forEach(function (it) {
      var li = el("li");
      if (it.f) {
        var a = el("a", {href: "#" + it.f.el.id}, it.text);
        a.addEventListener("click", function (ev) {
          ev.preventDefault(); it.f.el.focus(); it.f.el.scrollIntoView({block: "center"});
        });
        li.appendChild(a);
      } else li.textContent = it.text;
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }
  function fetchWarnings(form, box, paths) {  // GET /api/config/warnings after a save
    return api("GET", "/api/config/warnings").then(function (res) {
      var all = (res.status === 200 && res.data.warnings) || {}, own = {};
      Object.keys(all).forEach(function (p) {
        if (!paths || paths.some(function (q) { return p.indexOf(q) === 0; })) own[p] = all[p];
      });
      var items = mark(form, own, "warn");
      summary(box, items.length === 1 ? "Saved, but 1 setting cannot work as it is:" :
              "Saved, but " + items.length + " settings cannot work as they are:", items, "warned");
      return items.length;
    }).catch(function () { return 0; });
  }

  function afterSave(form, res, msg, box, paths) {
    if (res.status === 200) {
      useConfig(res.data);
      if (form.saved) form.saved();
      mark(form, {}, "err");
      summary(box, "", [], "");
      loadBoard();  // the simulated controls follow the saved roles
      return fetchWarnings(form, box, paths).then(function (n) {  // one message, at the end
        msg.textContent = n ? "Saved, with " + plural(n, "warning") + "." : "Saved.";
        return true;
      });
    }
    if (res.status === 400 && res.data.errors) {
      var items = mark(form, res.data.errors, "err");
      msg.textContent = "Not saved: " + plural(items.length, "problem") + ".";
      summary(box, "Not saved: " + plural(items.length, "problem") + " to correct", items, "invalid");
      box.focus();
    } else {
      msg.textContent = "Not saved: " + (res.data.error || ("HTTP " + res.status));
    }
    return Promise.resolve(false);
  }
  // ---- the first-setup checklist -------------------------------------------------------
  var STEPS = [
    {id: "reg", title: "Registrar or direct IP", paths: ["sip."],
     intro: "Does the station register with a PBX, a FRITZ!Box or a SIP provider, or do the " +
            "flats' phones call it directly by its IP address?",
     draw: function (form, cfg, box) {
       var direct = !cfg.sip.registrar;
       // a checkbox, not two radios: Tab and Space alone reach and change it
       var lab = el("label", {"for": "c:registrar-mode", "class": "inline"});
       var c = el("input", {type: "checkbox", id: "c:registrar-mode", "aria-describedby": "c:mode-help"});
       c.checked = !direct;
       c.addEventListener("change", function () { enableReg(form, c.checked); });
       lab.appendChild(c);
       lab.appendChild(document.createTextNode(" Through a registrar (PBX or SIP provider)"));
       box.appendChild(lab);
       box.appendChild(el("p", {id: "c:mode-help", "class": "help"}, "Not ticked: Direct IP (no " +
                          "registrar), the flats' phones call the station at its own address."));
       [["sip.registrar", "Registrar (host[:port])"], ["sip.domain", "Domain"],
        ["sip.username", "User name"], ["sip.password", "Password", "password"],
        ["sip.transport", "Transport", ["udp", "tcp", "tls"]],
        ["sip.listen", "Listen on (host:port)"]].forEach(function (d) {
         field(form, box, d[0], d[1], d[2] || "text", get(cfg, d[0]));
       });
       enableReg(form, !direct);
     },
     collect: function (doc) {
       if (!$("c:registrar-mode").checked) doc.sip.registrar = "";
       return doc;
     },
     watch: checkRegistration},  // done only when it works
    {id: "targets", title: "Who the call buttons ring", paths: ["buttons"],
     intro: "Each call button rings its targets together (a ring group). A target is a SIP " +
            "URI such as sip:flat1@192.168.1.10 or, behind a registrar, a short number.",
     draw: function (form, cfg, box) {
       callButtons(cfg).forEach(function (x) {
         var b = x[0], fs = el("fieldset");
         fs.appendChild(el("legend", {}, "The " + b.role + " button"));
         field(form, fs, "buttons[" + x[1] + "].targets", "Targets of the " + b.role +
               " button (one per line)", "lines", b.targets);
         box.appendChild(fs);
       });
       if (!callButtons(cfg).length) box.appendChild(el("p", {}, "No call button is configured: add one under Settings, Buttons."));
     },
     collect: function (doc) {  // the other buttons and keys stay as they are
       var got = doc.buttons || [];
       doc.buttons = S.config.buttons.map(function (b, i) { return got[i] ? merge(b, got[i]) : b; });
       return doc;
     },
     check: testCallOffer},
    {id: "allow", title: "Who may be answered automatically", paths: ["answer."],
     intro: "With \"auto\", a call from an allowed caller is answered at once (with a cue " +
            "tone), so the flat can talk to the door without anyone pressing a button.",
     draw: function (form, cfg, box) {
       field(form, box, "answer.mode", "Incoming calls", ["auto", "ring", "off"], cfg.answer.mode);
       field(form, box, "answer.allow", "Allowed callers (one SIP URI per line)", "lines",
             cfg.answer.allow, ALLOW_NOTE);
     }},
    {id: "codes", title: "Door codes", paths: ["door.codes"],
     intro: "During a call, a caller types a code on the phone's keypad to open a door.",
     draw: function (form, cfg, box) {
       box.appendChild(el("p", {"class": "note"}, CODES_NOTE));
       listBlock(form, box, "Code", "door.codes", cfg.door.codes, function (b, c, p) {
         codeFields(form, b, c, p);
       });
     }},
    {id: "camera", title: "Camera", paths: ["camera."], when: DL.hasCamera,
     intro: "A picture at every ring, and video in calls for phones that show it.",
     draw: function (form, cfg, box) {
       field(form, box, "camera.enabled", "Use the camera", "bool", cfg.camera.enabled);
       field(form, box, "camera.snapshot_on_ring", "Picture at every ring", "bool", cfg.camera.snapshot_on_ring);
       field(form, box, "camera.video", "Video in calls", ["offer", "off"], cfg.camera.video);
     }},
    {id: "mqtt", title: "Home Assistant (MQTT)", paths: ["mqtt."],
     intro: "Optional: tell Home Assistant about rings, calls and the door. Leave the broker " +
            "empty for none.",
     draw: function (form, cfg, box) {
       field(form, box, "mqtt.broker", "MQTT broker (host[:port], empty = off)", "text", cfg.mqtt.broker);
       field(form, box, "mqtt.username", "MQTT user name", "text", cfg.mqtt.username);
       field(form, box, "mqtt.password", "MQTT password", "password", cfg.mqtt.password);
     }}
  ];
  function enableReg(form, on) {
    ["sip.registrar", "sip.username", "sip.password", "sip.transport"].forEach(function (p) {
      var f = $("c:" + p); if (f) f.disabled = !on;
    });
  }
  function steps() { return STEPS.filter(function (s) { return !s.when || s.when(); }); }
  var current = 0;

  function drawSteps() {
    var list = clear($("steps")), done = stored().done || {};
    steps().forEach(function (s, i) {
      var li = el("li", {"class": done[s.id] ? "done" : ""});
      var b = button(s.title, function () { openStep(i); });
      if (i === current) b.setAttribute("aria-current", "step");
      li.appendChild(b);
      li.appendChild(el("span", {"class": "muted"}, done[s.id] === "skipped" ? " skipped" :
                                 done[s.id] ? " done" : ""));
      list.appendChild(li);
    });
  }
  function openStep(i, focus) {
    current = Math.max(0, Math.min(i, steps().length - 1));
    drawSteps();
    var s = steps()[current], box = clear($("step"));
    stepForm.fields = []; stepForm.lists = [];
    var h = el("h3", {id: "step-title", tabindex: "-1"}, "Step " + (current + 1) + " of " +
               steps().length + ": " + s.title);
    box.appendChild(h);
    box.appendChild(el("p", {}, s.intro));
    var form = el("form", {novalidate: "", "aria-labelledby": "step-title"});
    var sum = el("div", {"class": "summary", tabindex: "-1", id: "step-summary", hidden: ""});
    var fieldsBox = el("div");
    form.appendChild(sum); form.appendChild(fieldsBox);
    stepForm.draw = function (values) {
      clear(fieldsBox); stepForm.fields = []; stepForm.lists = [];
      s.draw(stepForm, merge(S.config, values || {}), fieldsBox);
    };
    stepForm.draw();
    var msg = el("p", {role: "status", id: "step-msg"});
    var result = el("div", {id: "step-result", "aria-live": "polite"});
    var row = el("div", {"class": "row"});
    row.appendChild(el("button", {type: "submit"}, "Save and check"));
    row.appendChild(button("Skip this step", function () {
      remember(function (st) { if (!st.done[s.id]) st.done[s.id] = "skipped"; });
      next();
    }, {"class": "secondary"}));
    form.appendChild(row); form.appendChild(msg); form.appendChild(result);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var doc = collect(stepForm);
      if (s.collect) doc = s.collect(doc);
      msg.textContent = "Saving…"; clear(result);
      var saved = Date.now() / 1000, reg = (DL.status() || {}).registration || {};
      var since = reg.since;  // the registration's state before this save
      api("PUT", "/api/config", doc).then(function (res) {
        return afterSave(stepForm, res, msg, sum, s.paths);
      }).then(function (ok) {
        if (!ok) return;
        var done = function () {  // a step is done when saved and (where checked) working
          remember(function (st) { st.done[s.id] = true; });
          drawSteps();
        };
        if (s.watch) s.watch(result, saved, since, done);
        else { done(); if (s.check) s.check(result); }
        result.appendChild(nextButton());
      });
    });
    box.appendChild(form);
    if (focus !== false) h.focus();
  }
  function nextButton() {
    var last = current >= steps().length - 1;
    return button(last ? "Finish: go to the dashboard" : "Next: " + steps()[current + 1].title, next);
  }
  function next() {
    if (current >= steps().length - 1) {
      remember(function (st) { st.dismissed = true; });
      location.hash = "#dashboard";
    } else openStep(current + 1);
  }

  // Registration: wait for registered or failed (with its reason), showing each attempt.
  function checkRegistration(box, saved, before, done) {
    var line = el("p", {"class": "progress"}, "Checking the registration…");
    box.appendChild(line);
    var until = Date.now() + 45000, seen = false;
    function look() {
      api("GET", "/api/status").then(function (res) {
        var reg = res.data.registration || {}, r = regText(reg);
        // the result of this save, not the one before: the state went through "registering",
        // or began anew, or 3 s went by (clocks of the page and the station may differ)
        seen = seen || reg.state === "registering";
        var fresh = seen || (reg.since && reg.since !== before) || Date.now() / 1000 - saved > 3;
        line.className = "progress " + r.cls;
        line.textContent = r.text + (r.detail ? " — " + r.detail : "");
        if (r.direct) { if (r.cls === "ok") done(); return; }
        if (fresh && (reg.state === "registered" || reg.state === "failed")) {
          line.textContent = (reg.state === "registered" ? "✓ " : "✗ ") + line.textContent;
          if (reg.state === "registered") done();
          return;
        }
        if (Date.now() > until) { line.textContent = "No answer yet after 45 s: " + line.textContent; return; }
        setTimeout(look, 500);
      }).catch(function () { setTimeout(look, 1000); });
    }
    look();
  }
  // Targets: offer a test call to the first target and show its outcome.
  function testCallOffer(box) {
    var first = callButtons(S.config).map(function (x) { return x[0].targets[0]; }).filter(Boolean)[0];
    if (!first) return;
    box.appendChild(button("Test call to " + first, function () { testCall(first, box); }));
  }

  DL.setup = {
    enter: function () { openStep(current, false); },
    leave: function () { clear($("step")); stepForm.fields = []; }
  };
  DL.forms = {field: field, collect: collect, relist: relist, listBlock: listBlock, mark: mark, summary: summary,
              afterSave: afterSave, codeFields: codeFields, ALLOW_NOTE: ALLOW_NOTE,
              CODES_NOTE: CODES_NOTE};
})(window.Doorline);
