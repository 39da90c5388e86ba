// The import report: while the job runs, its status every second (the page reloads when it
// ends); once it succeeded, one reload after data-reload-after ms to show the readability
// check a worker is still making.
(function () {
  var script = document.currentScript;
  if (script.dataset.reloadAfter) {
    setTimeout(function () { window.location.reload(); }, Number(script.dataset.reloadAfter));
    return;
  }
  var bar = document.getElementById("import-progress"), counts = document.getElementById("import-counts");
  function poll() {
    fetch(script.dataset.statusUrl, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.finished) { window.location.reload(); return; }
        bar.value = s.percent; bar.textContent = s.percent + "%";
        document.getElementById("import-status").textContent = s.status;
        if (s.status === "running") {
          counts.textContent = s.percent + "% read · " + s.imported + " rows ready · " +
            s.duplicates + " duplicate · " + s.rejected + " rejected";
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
