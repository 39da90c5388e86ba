// The Find page: select all / some of the results, keyboard shortcuts ("/" search, "a" all).
(function () {
  "use strict";
  const all = document.getElementById("select-all");
  const picks = Array.from(document.querySelectorAll("input.pick"));
  const count = document.getElementById("selected-count");
  const submit = document.getElementById("bulk-submit");

  function update() {
    const chosen = picks.filter((box) => box.checked).length;
    if (count) count.textContent = chosen + " selected";
    if (submit) submit.disabled = chosen === 0;
    if (all) {
      all.checked = chosen === picks.length;
      all.indeterminate = chosen > 0 && chosen < picks.length;
    }
  }

  if (all) {
    all.addEventListener("change", () => {
      picks.forEach((box) => { box.checked = all.checked; });
      update();
    });
  }
  picks.forEach((box) => box.addEventListener("change", update));
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) && event.target.type !== "checkbox";
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      event.preventDefault();
      document.getElementById("find-q").focus();
    } else if (event.key === "a" && all) {
      all.checked = !all.checked;
      all.dispatchEvent(new Event("change"));
    }
  });
  update();
})();
