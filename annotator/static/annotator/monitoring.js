// Polls the project's monitoring status: live prediction counts and the alert banner.
(function () {
  const box = document.getElementById("monitoring");
  if (!box) return;
  const csrf = box.querySelector("input[name=csrfmiddlewaretoken]").value;
  const alertsBox = box.querySelector(".monitoring-alerts");
  const rows = box.querySelector(".monitoring-labels");
  const when = box.querySelector(".monitoring-when");

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function render(status) {
    rows.replaceChildren();
    for (const l of status.labels) {
      const tr = document.createElement("tr");
      cell(tr, l.label); cell(tr, l.count); cell(tr, Math.round(l.share * 100) + "%");
      rows.appendChild(tr);
    }
    when.textContent = status.model_version
      ? `v${status.model_version}, last ${status.items} of ${status.window}` +
        (status.latest_prediction_at ? `, newest ${new Date(status.latest_prediction_at).toLocaleTimeString()}` : "")
      : "no active model";
    alertsBox.replaceChildren();
    for (const a of status.alerts) {
      const div = document.createElement("div");
      div.className = "notice error";
      div.textContent = `Alert “${a.rule}”: ${a.label} at ${Math.round(a.share * 100)}% ` +
        `of the last ${a.items} items (threshold ${Math.round(a.threshold * 100)}%), ` +
        `${new Date(a.created_at).toLocaleString()} `;
      const button = document.createElement("button");
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => acknowledge(a.id));
      div.appendChild(button);
      alertsBox.appendChild(div);
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.statusUrl, {credentials: "same-origin"});
      if (response.ok) render(await response.json());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  }

  async function acknowledge(id) {
    await fetch(box.dataset.ackUrl.replace(/\/0\/acknowledge$/, `/${id}/acknowledge`), {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf},
    });
    poll();
  }

  poll();
  setInterval(poll, 5000);
})();
