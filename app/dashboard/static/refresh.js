// Reloads the page every `data-refresh` seconds (set on <body> while it shows queued or running jobs).
(function () {
  "use strict";
  var seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    window.setTimeout(function () {
      window.location.reload();
    }, seconds * 1000);
  }
})();
