// The console's behaviour: log in and out, sort and filter tables, draw the
// charts, and send every change to the admin API with the session's CSRF token.
"use strict";

const API = "/admin/api/v1";

function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function call(method, path, body) {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) {
    const details = (answer.data || []).map((d) => d.reason || JSON.stringify(d)).join("; ");
    throw new Error(answer.msg + (details ? ": " + details : ""));
  }
  return answer.data;
}

function on(id, event, handler) {
  const element = document.getElementById(id);
  if (element) element.addEventListener(event, handler);
}

on("login", "submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await call("POST", "/session", { name: form.get("name"), password: form.get("password") });
    location.assign("/console");
  } catch (error) {
    document.getElementById("login-error").textContent = error.message;
  }
});

on("logout", "click", async () => {
  await call("DELETE", "/session").catch(() => {});
  location.assign("/console/login");
});

// Sortable, searchable tables.
for (const table of document.querySelectorAll("table.sortable")) {
  table.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const rows = [...table.tBodies[0].rows];
      const ascending = th.dataset.order !== "asc";
      const key = (row) => {
        const cell = row.cells[column];
        const text = cell.dataset.value ?? cell.textContent.trim();
        return th.dataset.kind === "number" ? parseFloat(text) || 0 : text.toLowerCase();
      };
      rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (ascending ? 1 : -1));
      th.dataset.order = ascending ? "asc" : "desc";
      table.tBodies[0].append(...rows);
    });
  });
}
on("filter", "input", (event) => {
  const needle = event.target.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("#overview tbody tr")) {
    row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
  }
});

// Charts: one per meter with usage in the month.
const chartData = document.getElementById("chart-data");
if (chartData && window.Chart) {
  const holder = document.getElementById("charts");
  for (const chart of JSON.parse(chartData.textContent)) {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.dataset.meter = chart.meter;
    figure.append(canvas);
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title + " (" + chart.meter + ")";
    figure.append(caption);
    holder.append(figure);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.labels.map((day) => day.slice(8)),
        datasets: [{ label: chart.meter, data: chart.values, backgroundColor: "#2563eb" }],
      },
      options: { animation: false, plugins: { legend: { display: false } } },
    });
  }
}

// Tokens.
on("new-token", "submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const operation = event.target.dataset.operation;
  const output = document.getElementById("new-secret");
  try {
    const [token] = await call("POST", `/operations/${encodeURIComponent(operation)}/tokens`, {
      scope: form.get("scope"), description: form.get("description"),
    });
    output.textContent = token.secret;
    output.dataset.token = token.id;
  } catch (error) {
    output.textContent = error.message;
  }
});
for (const button of document.querySelectorAll("button.revoke")) {
  button.addEventListener("click", async () => {
    const { operation, token } = button.dataset;
    try {
      await call("DELETE", `/operations/${encodeURIComponent(operation)}/tokens/${token}`);
      button.closest("tr").querySelector(".state").textContent = "revoked";
      button.remove();
    } catch (error) {
      alert(error.message);
    }
  });
}

for (const button of document.querySelectorAll("button.replay")) {
  button.addEventListener("click", async () => {
    try {
      await call("POST", `/deliveries/${button.dataset.delivery}/replay`);
      button.closest("tr").querySelector(".state").textContent = "pending";
    } catch (error) {
      alert(error.message);
    }
  });
}

on("portal-link", "click", async (event) => {
  const operation = event.target.dataset.operation;
  const output = document.getElementById("portal-url");
  try {
    const [link] = await call("POST", `/operations/${encodeURIComponent(operation)}/portal-link`);
    output.textContent = link.url;
  } catch (error) {
    output.textContent = error.message;
  }
});

on("correction", "submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const correction = { id: form.get("id"), action: form.get("action"), reason: form.get("reason") };
  if (form.get("action") === "amend") correction.quantity = Number(form.get("quantity"));
  const output = document.getElementById("correction-result");
  try {
    const [result] = await call(
      "POST", `/operations/${encodeURIComponent(event.target.dataset.operation)}/corrections`,
      { corrections: [correction] });
    output.textContent = result.results.join(", ");
  } catch (error) {
    output.textContent = error.message;
  }
});

// Statements: close a month, then show the new statements in the list.
on("close-month", "submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { month: form.get("month") };
  if (form.get("operation")) body.operation = form.get("operation");
  const output = document.getElementById("close-result");
  try {
    const [outcome] = await call("POST", "/statements/close", body);
    if (outcome.closed.length) {
      location.reload();
      return;
    }
    const skipped = [["already closed", outcome.already_closed], ["not due yet", outcome.not_due],
      ["not billable", outcome.not_billable]].filter(([, names]) => names.length);
    output.textContent = "Nothing closed. " +
      skipped.map(([label, names]) => label + ": " + names.join(", ")).join("; ");
  } catch (error) {
    output.textContent = error.message;
  }
});
