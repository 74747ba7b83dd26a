// Doorline page: the camera's live view (only while the dashboard is visible), the last ring's
// picture and the earlier ones. Loaded by app.js where the board has a camera.
"use strict";
(function (DL) {
  var S = DL.S, $ = DL.$, api = DL.api, el = DL.el, clear = DL.clear;
  var camera = null, liveTimer = null, shownSnapshots = "";
  var STREAM_RENEW_MS = 7500;  // the server ends each MJPEG response after 8 s
  function liveWanted() { return camera && document.visibilityState === "visible" && S.view === "dashboard"; }
  function liveOn() {
    $("cam-live").src = "/api/camera/stream?t=" + Date.now();
    $("cam-live-state").textContent = "";
    if (liveTimer === null) liveTimer = setInterval(liveOn, STREAM_RENEW_MS);
  }
  function liveOff() {
    if (liveTimer !== null) { clearInterval(liveTimer); liveTimer = null; }
    $("cam-live").removeAttribute("src");  // closes the stream: the camera may stop
    $("cam-live-state").textContent = "(paused while the page is hidden)";
  }
  function live() { if (camera) { if (liveWanted()) liveOn(); else liveOff(); } }
  function showCamera(info) {
    camera = info;
    $("camera").hidden = false;
    var url = info.phone_url ? location.origin + info.phone_url : "";
    $("cam-phone").textContent = "Picture URL for phones: " + (url || "off.");
    live();
  }
  function showSnapshots(list) {
    var key = list.map(function (s) { return s.id; }).join(",");
    if (key === shownSnapshots) return;
    shownSnapshots = key;
    var box = clear($("cam-history"));
    list.slice(0, 12).forEach(function (s) {
      var li = el("li"), when = new Date(s.time * 1000).toLocaleString();
      li.appendChild(el("img", {src: "/api/snapshots/" + encodeURIComponent(s.id), loading: "lazy",
                                alt: "Ring at " + when}));
      var what = s.event ? [s.event.role, s.event.outcome].filter(Boolean).join(" → ") : "";
      li.appendChild(el("span", {}, (what ? what + ", " : "") + when));
      box.appendChild(li);
    });
    if (list.length) {
      $("cam-ring").src = "/api/snapshots/" + encodeURIComponent(list[0].id);
      $("cam-ring").hidden = false;
      $("cam-ring-caption").textContent = "Last ring: " + (list[0].event && list[0].event.role ?
        list[0].event.role + ", " : "") + new Date(list[0].time * 1000).toLocaleString();
    }
  }
  function pollSnapshots() {
    if (camera === null || S.view !== "dashboard") return;
    api("GET", "/api/snapshots").then(function (res) { showSnapshots(res.data.snapshots || []); })
      .catch(function () {});
  }
  function renewToken(enabled) {
    api("POST", "/api/camera/token", {enabled: enabled}).then(function (res) {
      if (res.status === 200) showCamera(res.data);
      else $("cam-phone").textContent = res.data.error || "Could not change the picture URL.";
    });
  }
  $("btn-token-new").addEventListener("click", function () { renewToken(true); });
  $("btn-token-off").addEventListener("click", function () { renewToken(false); });
  document.addEventListener("visibilitychange", live);
  DL.camera = {live: live};
  api("GET", "/api/camera").then(function (res) {
    if (res.status !== 200 || !res.data.present) return;  // off: no camera section
    showCamera(res.data);
    pollSnapshots();
    setInterval(pollSnapshots, 3000);
  }).catch(function () {});

})(window.Doorline);
