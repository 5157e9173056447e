// The sdh dashboard: a read-only view over the HTTP API with the user's own token.
// Every value from the API is inserted as text (never as HTML).
"use strict";

const API = "/api/v1";
const main = document.getElementById("main");
let refreshTimer = null;
// What the user ticked survives the page's periodic refresh.
const selected = { installations: new Set(), applications: new Set(), release: "" };
let notice = null;

function token() { return localStorage.getItem("sdh-token") || ""; }

async function api(path, method = "GET", payload = undefined) {
  const headers = { Authorization: "Bearer " + token() };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method, headers, body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const refused = body && body.refused
      ? " — " + body.refused.map((r) => `${r.installation_id}/${r.application}: ${r.reason}`).join(", ")
      : "";
    throw new Error(`${response.status} ${body && body.code ? body.code + ": " : ""}${detail}${refused}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (status) => el("span", { class: `badge ${status}`, "data-status": status }, status.replaceAll("_", " "));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const enc = encodeURIComponent;

function table(headers, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function show(...nodes) { main.replaceChildren(...nodes); }

async function tracksPage() {
  const tracks = await api("/release-tracks");
  const rows = tracks.flatMap((track) =>
    (track.releases.length ? track.releases : [null]).map((release) =>
      el("tr", {},
        el("td", {}, track.name),
        el("td", {}, release ? el("a", { href: `#/tracks/${enc(track.name)}/${enc(release.version)}` }, release.version) : el("span", { class: "muted" }, "no release yet")),
        el("td", {}, release ? release.name : ""),
        el("td", {}, release ? badge(release.status) : ""),
        el("td", {}, release && release.locked ? "locked" : ""))));
  show(el("h1", {}, "Release tracks"),
    table(["Track", "Version", "Name", "Status", "Requirements"], rows, { id: "tracks" }));
}

function requirements(release) {
  return release.stages.map((stage, index) =>
    el("div", { class: "stage" }, el("strong", {}, `Stage ${index + 1}`),
      table(["Application", "Workflow", "Image", "Instructions"], stage.map((app) =>
        el("tr", {}, el("td", {}, app.application), el("td", {}, app.workflow || ""),
          el("td", {}, el("code", {}, app.image || "—")),
          el("td", {}, app.instructions ? el("pre", {}, app.instructions) : ""))))));
}

let principal = null;
async function whoami() {
  if (principal === null || principal.token !== token()) {
    principal = { ...(await api("/me")), token: token() };
  }
  return principal;
}

function actions(base, release, status) {
  const act = (label, path, ask) => el("button", {
    "data-action": path,
    onclick: async () => {
      const body = ask ? { reason: prompt(ask) || "" } : undefined;
      if (ask && body.reason === "" && path === "/rescind") return;
      await perform(() => api(base + path, "POST", body), `${label}: done`);
    },
  }, label);
  const buttons = [];
  if (status !== "rescinded") {
    if (!release.locked) buttons.push(act("Lock requirements", "/lock"));
    else if (status === "draft") buttons.push(act("Mark ready", "/ready"), act("Unlock to edit", "/unlock"));
    if (["ready", "partially_released", "completely_released"].includes(status)) buttons.push(act("Hold", "/hold", "Why hold the release?"));
    if (status === "on_hold") buttons.push(act("Resume", "/resume"));
    buttons.push(act("Rescind", "/rescind", "Why rescind the release? (required)"));
  }
  return el("div", { class: "filters", id: "actions" }, buttons);
}

async function perform(call, success) {
  try {
    await call();
    notice = el("p", { class: "notice", id: "notice" }, success);
  } catch (error) {
    notice = el("p", { class: "error", id: "notice" }, error.message);
  }
  route();
}

function deployForm(base, release) {
  const apps = release.stages.flatMap((stage, index) => stage.map((app) =>
    el("label", {}, el("input", {
      type: "checkbox", "data-application": app.application,
      ...(selected.applications.has(app.application) ? { checked: "" } : {}),
      onchange: (e) => { e.target.checked ? selected.applications.add(app.application) : selected.applications.delete(app.application); },
    }), ` ${app.application} (stage ${index + 1}) `)));
  const phase = el("select", { id: "phase" }, ["deploy", "pre", "post"].map((p) => el("option", { value: p }, p)));
  return el("div", { class: "stage", id: "deploy" },
    el("strong", {}, "Deploy to the ticked installations: "), ...apps, phase, " ",
    el("button", {
      id: "deploy-button",
      onclick: () => perform(() => api(base + "/deployments", "POST", {
        installations: [...selected.installations], applications: [...selected.applications],
        phase: document.getElementById("phase").value,
      }), "Deployments requested"),
    }, "Deploy"));
}

async function releasePage(track, version, filter) {
  const base = `/release-tracks/${enc(track)}/releases/${enc(version)}`;
  if (selected.release !== base) {
    selected.release = base;
    selected.installations.clear();
    selected.applications.clear();
  }
  const [release, rollout, history] = await Promise.all([
    api(base),
    api(base + "/rollout" + (filter ? `?status=${enc(filter)}` : "")),
    api(base + "/history?limit=50"),
  ]);
  const filters = el("div", { class: "filters" }, ["", "yet_to_trigger", "ongoing", "failed", "completed"].map((status) =>
    el("button", {
      class: status === (filter || "") ? "active" : "",
      onclick: () => { location.hash = `#/tracks/${enc(track)}/${enc(version)}` + (status ? `?status=${status}` : ""); },
    }, status ? `${status.replaceAll("_", " ")} (${rollout.counts[status] || 0})` : `all (${rollout.total})`)));
  const installations = rollout.installations.map((inst) =>
    el("tr", { "data-installation": inst.installation_id },
      el("td", {}, el("input", {
        type: "checkbox", "aria-label": `select ${inst.installation_id}`,
        ...(selected.installations.has(inst.installation_id) ? { checked: "" } : {}),
        onchange: (e) => { e.target.checked ? selected.installations.add(inst.installation_id) : selected.installations.delete(inst.installation_id); },
      })),
      el("td", {}, inst.tenant_id), el("td", {}, inst.installation_id), el("td", {}, badge(inst.status)),
      el("td", {}, inst.applications.map((app) =>
        el("div", {}, `stage ${app.stage ?? "?"} · ${app.application} `, badge(app.status),
          el("span", { class: "muted" }, ` ${app.image || ""} ${when(app.updated_at)}`))))));
  const historyRows = history.map((d) =>
    el("tr", {}, el("td", {}, when(d.requested_at)), el("td", {}, d.installation_id),
      el("td", {}, d.application), el("td", {}, d.phase), el("td", {}, badge(d.status)),
      el("td", {}, d.requested_by), el("td", {}, d.duration_seconds ?? ""), el("td", {}, d.message)));
  const me = await whoami();
  const manages = ["admin", "release-manager"].includes(me.role);
  const deploys = manages || me.role === "deployer";
  show(
    el("h1", {}, `${track} ${release.version} `, badge(rollout.release_status)),
    notice,
    manages ? actions(base, release, rollout.release_status) : null,
    el("p", { class: "muted" }, release.name === release.version ? "" : release.name, " ", release.description,
      release.locked ? " · requirements locked" : " · requirements unlocked",
      release.hold_reason ? ` · on hold: ${release.hold_reason}` : ""),
    el("h2", {}, "Rollout status"), filters,
    table(["", "Tenant", "Installation", "Status", "Applications"], installations, { id: "rollout" }),
    deploys ? deployForm(base, release) : null,
    el("h2", {}, "Requirements"), ...requirements(release),
    release.notes ? el("h2", {}, "Release notes") : null,
    release.notes ? el("pre", { id: "notes" }, release.notes) : null,
    el("h2", {}, "Rollout history"),
    table(["Requested", "Installation", "Application", "Phase", "Outcome", "By", "Seconds", "Message"], historyRows, { id: "history" }),
  );
  // Rollouts move on their own: keep this page current while it is open.
  refreshTimer = setTimeout(() => route(), 2000);
}

async function tenantsPage() {
  const tenants = await api("/tenants");
  const rows = tenants.flatMap((tenant) =>
    (tenant.installations.length ? tenant.installations : [null]).map((inst) =>
      el("tr", {}, el("td", {}, tenant.tenant_id), el("td", {}, tenant.display_name),
        el("td", {}, inst ? `${inst.installation_id} (${inst.display_name})` : el("span", { class: "muted" }, "no installation")),
        el("td", {}, inst ? inst.environments.join(", ") : ""))));
  show(el("h1", {}, "Tenants"),
    table(["Tenant ID", "Name", "Installation", "Environments"], rows, { id: "tenants" }));
}

async function route() {
  clearTimeout(refreshTimer);
  if (!token()) return;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const filter = new URLSearchParams(query || "").get("status");
  try {
    if (parts[0] === "tenants") await tenantsPage();
    else if (parts[0] === "tracks" && parts.length === 3) await releasePage(parts[1], parts[2], filter);
    else await tracksPage();
  } catch (error) {
    show(el("p", { class: "error", id: "error" }, error.message));
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (value) localStorage.setItem("sdh-token", value);
  document.getElementById("token").value = "";
  document.getElementById("logout").hidden = !token();
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  localStorage.removeItem("sdh-token");
  document.getElementById("logout").hidden = true;
  show(el("p", { class: "muted" }, "Token forgotten."));
});
document.getElementById("logout").hidden = !token();
window.addEventListener("hashchange", () => { notice = null; route(); });
route();
