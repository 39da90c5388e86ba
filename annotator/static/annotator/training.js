// The models page: the training run's progress, polled every 2 s while one is queued or
// running; the page reloads when a watched run ends, to show the new version.
(function () {
  var box = document.getElementById("training"), text = document.getElementById("training-status"),
      bar = document.getElementById("training-bar"), watching = false;
  function show(s) {
    var p = s.progress || {};
    if (!s.run) { text.textContent = "No training yet."; bar.hidden = true; return; }
    var msg = "Run " + s.run + ": " + s.status;
    if (p.total_steps) {
      msg += " · epoch " + p.epoch + "/" + p.epochs + " · step " + p.step + "/" + p.total_steps + " · loss " + p.loss;
      if (p.phase && s.status === "running") { msg += " · " + p.phase; }
      bar.max = p.total_steps; bar.value = p.step;
    }
    text.textContent = msg;
    bar.hidden = !(s.status === "running" && p.total_steps);
    if (s.status === "queued" || s.status === "running") { watching = true; setTimeout(poll, 2000); }
    else if (watching) { window.location.reload(); }  // a run just ended: show the new version
  }
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(show)
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
