// cco dashboard: live updates over server-sent events, and relative times kept current.
// No framework, no build step: this file is served as it is, from the binary.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var badge = document.getElementById("live");
  var page = document.body.getAttribute("data-page") || location.pathname;

  function tickTimes() {
    var now = Date.now();
    var times = document.querySelectorAll("time[data-since]");
    for (var i = 0; i < times.length; i++) {
      var at = Date.parse(times[i].getAttribute("datetime"));
      if (isNaN(at)) continue;
      var s = Math.max(0, (now - at) / 1000);
      var text;
      if (s < 60) text = s.toFixed(1) + " s";
      else if (s < 3600) text = Math.floor(s / 60) + "m " + String(Math.floor(s % 60)).padStart(2, "0") + "s";
      else text = Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
      times[i].textContent = text;
    }
  }
  setInterval(tickTimes, 1000);

  if (!window.EventSource || !main || !badge) return; // a finished run: nothing to follow
  var url = "/sse?page=" + encodeURIComponent(page);
  var log = document.getElementById("log");
  if (log && log.hasAttribute("data-from")) {
    url += "&from=" + encodeURIComponent(log.getAttribute("data-from"));
  }
  var source = new EventSource(url);
  source.onopen = function () { badge.className = "badge live on"; };
  source.onerror = function () { badge.className = "badge live off"; };
  source.addEventListener("main", function (e) {
    var open = {};
    var details = main.querySelectorAll("details[open]");
    for (var i = 0; i < details.length; i++) open[i] = true;
    main.innerHTML = e.data;
    var again = main.querySelectorAll("details");
    for (var j = 0; j < again.length; j++) if (open[j]) again[j].open = true;
    tickTimes();
  });
  source.addEventListener("append", function (e) {
    var target = document.getElementById("log");
    if (!target) return;
    var atBottom = window.innerHeight + window.scrollY >= document.body.offsetHeight - 40;
    target.insertAdjacentHTML("beforeend", e.data);
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  });
})();
