// Pulse dashboard: behaviour shared by every page (kept small; no inline script, CSP).
(function () {
  "use strict";
  // Overview and matrix pages reload themselves (a wall screen stays current), but never
  // while someone is typing in a field or the tab is hidden.
  var seconds = Number(document.body.dataset.reloadSeconds || 0);
  if (seconds > 0) {
    window.setInterval(function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
      if (!typing && document.visibilityState === "visible") {
        window.location.reload();
      }
    }, seconds * 1000);
  }
  // Read-only token fields select themselves when focused, ready to copy.
  document.querySelectorAll("input[readonly], textarea[readonly]").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });
})();
