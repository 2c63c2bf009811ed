// Redoubt admin panel. No framework: the DOM, fetch, and the admin API.
// The access token lives in sessionStorage only (gone with the tab).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("redoubt-admin-token"), userFrom: 0, roomFrom: 0, pageSize: 20, server: "" };

function status(msg, isError) {
  const s = $("status");
  s.textContent = msg || "";
  s.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (state.token) opts.headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error || ("HTTP " + res.status));
    err.status = res.status;
    err.errcode = data.errcode;
    throw err;
  }
  return data;
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  tr.appendChild(td);
  return td;
}

function button(parent, label, onClick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  parent.appendChild(b);
  return b;
}

function when(ts) { return ts ? new Date(ts).toLocaleString() : ""; }

// confirmDialog asks before a destructive action, naming its target.
function confirmDialog({ title, text, erase, block, password }) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-erase").checked = false;
    $("confirm-erase-label").hidden = !erase;
    $("confirm-block").checked = false;
    $("confirm-block-label").hidden = !block;
    $("confirm-password").value = "";
    $("confirm-password-label").hidden = !password;
    const done = (ok) => {
      d.close();
      $("confirm-form").onsubmit = null;
      $("confirm-cancel").onclick = null;
      resolve(ok ? { erase: $("confirm-erase").checked, block: $("confirm-block").checked, password: $("confirm-password").value } : null);
    };
    $("confirm-form").onsubmit = (e) => { e.preventDefault(); done(true); };
    $("confirm-cancel").onclick = () => done(false);
    d.onclose = () => resolve(null);
    d.showModal();
    (password ? $("confirm-password") : $("confirm-ok")).focus();
  });
}

function show(view) {
  status("");
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-" + view;
  for (const b of document.querySelectorAll("nav button[data-view]")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  const load = { users: loadUsers, tokens: loadTokens, rooms: loadRooms, summary: loadSummary, audit: loadAudit }[view];
  if (load) load().catch((e) => status(e.message, true));
}

async function login(e) {
  e.preventDefault();
  status("");
  try {
    const res = await api("POST", "/_matrix/client/v3/login", {
      type: "m.login.password", identifier: { type: "m.id.user", user: $("login-user").value },
      password: $("login-password").value, initial_device_display_name: "Redoubt admin panel",
    });
    state.token = res.access_token;
    try {
      await api("GET", "/_redoubt/admin/v1/summary");
    } catch (err) {
      await api("POST", "/_matrix/client/v3/logout").catch(() => {});
      state.token = null;
      throw err.status === 403 ? new Error("This account is not an administrator.") : err;
    }
    sessionStorage.setItem("redoubt-admin-token", state.token);
    $("login-password").value = "";
    start();
  } catch (err) {
    status(err.message, true);
  }
}

async function logout() {
  await api("POST", "/_matrix/client/v3/logout").catch(() => {});
  sessionStorage.removeItem("redoubt-admin-token");
  state.token = null;
  $("nav").hidden = true;
  show("login");
}

async function start() {
  try {
    const s = await api("GET", "/_redoubt/admin/v1/summary");
    state.server = s.server_name;
    $("server").textContent = s.server_name;
  } catch (err) {
    sessionStorage.removeItem("redoubt-admin-token");
    state.token = null;
    show("login");
    return;
  }
  $("nav").hidden = false;
  show("users");
}

async function loadUsers() {
  const q = new URLSearchParams({ from: state.userFrom, limit: state.pageSize, name: $("user-query").value,
    deactivated: $("user-deactivated").checked ? "true" : "false" });
  const res = await api("GET", "/_synapse/admin/v2/users?" + q);
  const rows = $("user-rows");
  rows.replaceChildren();
  for (const u of res.users) {
    const tr = document.createElement("tr");
    tr.dataset.user = u.name;
    cell(tr, u.name);
    cell(tr, u.displayname);
    cell(tr, u.admin ? "yes" : "");
    const idents = cell(tr, "");
    idents.className = "identities";
    cell(tr, u.deactivated ? (u.erased ? "deactivated, erased" : "deactivated") : "active");
    const actions = cell(tr, "");
    actions.className = "actions";
    if (!u.deactivated) {
      button(actions, "Reset password", () => resetPassword(u.name), "reset");
      button(actions, "Log out everywhere", () => logoutEverywhere(u.name), "logout");
      button(actions, "Deactivate", () => deactivate(u.name), "danger deactivate");
    }
    rows.appendChild(tr);
    showIdentities(u.name, idents);
  }
  $("user-page").textContent = res.total ? `${state.userFrom + 1}–${state.userFrom + res.users.length} of ${res.total}` : "no users";
  $("user-prev").disabled = state.userFrom === 0;
  $("user-next").disabled = res.next_token === undefined;
}

async function createUser(e) {
  e.preventDefault();
  const name = $("new-user-name").value.trim().toLowerCase();
  const userID = name.startsWith("@") ? name : `@${name}:${state.server}`;
  try {
    await api("PUT", "/_synapse/admin/v2/users/" + encodeURIComponent(userID), {
      password: $("new-user-password").value, admin: $("new-user-admin").checked,
    });
    $("new-user").reset();
    status(`Created ${userID}.`);
    await loadUsers();
  } catch (err) {
    status(err.message, true);
  }
}

// showIdentities lists the accounts at identity providers a user signs in
// with (the list endpoint, as Synapse's, does not carry them), each with
// a button to unlink it.
async function showIdentities(userID, td) {
  let u;
  try {
    u = await api("GET", "/_synapse/admin/v2/users/" + encodeURIComponent(userID));
  } catch (err) {
    return;
  }
  const ids = u.external_ids || [];
  if (ids.length === 0) {
    td.textContent = "password";
    return;
  }
  for (const id of ids) {
    const line = document.createElement("div");
    line.className = "identity";
    line.textContent = `${id.auth_provider}: ${id.external_id} `;
    button(line, "Unlink", () => unlink(userID, ids, id), "unlink");
    td.appendChild(line);
  }
}

async function unlink(userID, ids, gone) {
  const answer = await confirmDialog({ title: "Unlink identity", text: `Unlink ${gone.auth_provider}: ${gone.external_id} from ${userID}? They can no longer sign in with it; their sessions stay until logged out.` });
  if (!answer) return;
  try {
    await api("PUT", "/_synapse/admin/v2/users/" + encodeURIComponent(userID), { external_ids: ids.filter((x) => x !== gone) });
    status(`Unlinked ${gone.auth_provider} from ${userID}.`);
    await loadUsers();
  } catch (err) {
    status(err.message, true);
  }
}

// logoutEverywhere ends every session of a user (a leaver, say): each
// device is deleted, with its tokens.
async function logoutEverywhere(userID) {
  const answer = await confirmDialog({ title: "Log out everywhere", text: `Log ${userID} out of every device? Their account stays; they can sign in again unless you deactivate it or their identity provider refuses them.` });
  if (!answer) return;
  try {
    const base = "/_synapse/admin/v2/users/" + encodeURIComponent(userID);
    const res = await api("GET", base + "/devices");
    await api("POST", base + "/delete_devices", { devices: res.devices.map((d) => d.device_id) });
    status(`${userID} logged out of ${res.devices.length} device(s).`);
  } catch (err) {
    status(err.message, true);
  }
}

async function resetPassword(userID) {
  const answer = await confirmDialog({ title: "Reset password", text: `Set a new password for ${userID}. Their devices are logged out.`, password: true });
  if (!answer) return;
  try {
    await api("POST", "/_synapse/admin/v1/reset_password/" + encodeURIComponent(userID), { new_password: answer.password, logout_devices: true });
    status(`Password of ${userID} reset.`);
  } catch (err) {
    status(err.message, true);
  }
}

async function deactivate(userID) {
  const answer = await confirmDialog({ title: "Deactivate account", text: `Deactivate ${userID}? They are logged out everywhere, leave every room and cannot log in again.`, erase: true });
  if (!answer) return;
  try {
    await api("POST", "/_synapse/admin/v1/deactivate/" + encodeURIComponent(userID), { erase: answer.erase });
    status(`${userID} deactivated${answer.erase ? " and their data erased" : ""}.`);
    await loadUsers();
  } catch (err) {
    status(err.message, true);
  }
}

async function loadTokens() {
  const res = await api("GET", "/_synapse/admin/v1/registration_tokens");
  const rows = $("token-rows");
  rows.replaceChildren();
  for (const t of res.registration_tokens) {
    const tr = document.createElement("tr");
    cell(tr, t.token);
    cell(tr, t.uses_allowed === null ? "unlimited" : t.uses_allowed);
    cell(tr, t.completed);
    cell(tr, t.expiry_time ? when(t.expiry_time) : "never");
    const actions = cell(tr, "");
    actions.className = "actions";
    button(actions, "Delete", async () => {
      if (!await confirmDialog({ title: "Delete token", text: `Delete registration token ${t.token}?` })) return;
      await api("DELETE", "/_synapse/admin/v1/registration_tokens/" + encodeURIComponent(t.token)).catch((e) => status(e.message, true));
      await loadTokens();
    }, "danger");
    rows.appendChild(tr);
  }
}

async function createToken(e) {
  e.preventDefault();
  const body = {};
  if ($("new-token-uses").value !== "") body.uses_allowed = Number($("new-token-uses").value);
  if ($("new-token-days").value !== "") body.expiry_time = Date.now() + Number($("new-token-days").value) * 86400000;
  try {
    const t = await api("POST", "/_synapse/admin/v1/registration_tokens/new", body);
    $("new-token").reset();
    status(`Created token ${t.token}.`);
    await loadTokens();
  } catch (err) {
    status(err.message, true);
  }
}

async function loadRooms() {
  const res = await api("GET", `/_synapse/admin/v1/rooms?from=${state.roomFrom}&limit=${state.pageSize}`);
  const rows = $("room-rows");
  rows.replaceChildren();
  for (const r of res.rooms) {
    const tr = document.createElement("tr");
    tr.dataset.room = r.room_id;
    cell(tr, r.room_id);
    cell(tr, r.name || r.canonical_alias);
    cell(tr, r.joined_members);
    cell(tr, r.encryption ? "yes" : "");
    const actions = cell(tr, "");
    actions.className = "actions";
    button(actions, "Members", () => roomMembers(r));
    button(actions, "Delete", () => deleteRoom(r), "danger delete");
    rows.appendChild(tr);
  }
  $("room-page").textContent = res.total_rooms ? `${state.roomFrom + 1}–${state.roomFrom + res.rooms.length} of ${res.total_rooms}` : "no rooms";
  $("room-prev").disabled = state.roomFrom === 0;
  $("room-next").disabled = res.next_batch === undefined;
}

async function roomMembers(r) {
  const res = await api("GET", "/_synapse/admin/v1/rooms/" + encodeURIComponent(r.room_id) + "/members");
  $("room-members-title").textContent = `Members of ${r.name || r.room_id}`;
  const list = $("room-members-list");
  list.replaceChildren(...res.members.map((m) => { const li = document.createElement("li"); li.textContent = m; return li; }));
  $("room-members").hidden = false;
}

async function deleteRoom(r) {
  const answer = await confirmDialog({ title: "Delete room", text: `Delete ${r.name || r.room_id}? Everyone is removed and its history is deleted.`, block: true });
  if (!answer) return;
  try {
    await api("DELETE", "/_synapse/admin/v2/rooms/" + encodeURIComponent(r.room_id), { block: answer.block, purge: true });
    status("Room deleted.");
    await loadRooms();
  } catch (err) {
    status(err.message, true);
  }
}

async function loadSummary() {
  const s = await api("GET", "/_redoubt/admin/v1/summary");
  const mib = (n) => (n / 1048576).toFixed(1) + " MiB";
  const days = (ms) => (ms ? Math.round(ms / 86400000) + " days" : "forever");
  const items = [
    ["Server", s.server_name], ["Version", s.server_version], ["Users", s.users], ["Rooms", s.rooms], ["Events", s.events],
    ["Media", `${s.media.count} files, ${mib(s.media.bytes)}`], ["Database", mib(s.database_bytes)],
    ["Messages kept", days(s.retention.default_max_lifetime)], ["Media kept", days(s.retention.media_max_lifetime)],
    ["Last prune", s.last_prune_ts ? when(s.last_prune_ts) : "never"], ["Last backup", s.last_backup_ts ? when(s.last_backup_ts) : "never"],
    ...(s.backup_destinations || []).map((d) => [`Backup at ${d.name}`, (d.last_backup_ts ? when(d.last_backup_ts) : "never") +
      (d.replication_lag_ms == null ? "" : `; replication ${d.replication_lag_ms < 2000 ? "up to date" : Math.round(d.replication_lag_ms / 1000) + " s behind"}`)]),
  ];
  const dl = $("summary");
  dl.replaceChildren();
  for (const [k, v] of items) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(v);
    dl.append(dt, dd);
  }
}

// exportInstance starts an export, polls it, then saves the archive.
async function exportInstance() {
  const btn = $("export-start");
  btn.disabled = true;
  try {
    const { export_id: id } = await api("POST", "/_redoubt/admin/v1/export", {});
    let st;
    do {
      await new Promise((r) => setTimeout(r, 500));
      st = await api("GET", "/_redoubt/admin/v1/export/" + id);
      $("export-status").textContent = st.status;
    } while (st.status === "running");
    if (st.status !== "complete") throw new Error("export failed: " + (st.error || st.status));
    const res = await fetch(`/_redoubt/admin/v1/export/${id}/download`, { headers: { Authorization: "Bearer " + state.token } });
    if (!res.ok) throw new Error("download failed: HTTP " + res.status);
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = `redoubt-export-${state.server}.tar.zst`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    $("export-status").textContent = `exported (${(st.bytes / 1048576).toFixed(1)} MiB)`;
  } catch (err) {
    status(err.message, true);
  } finally {
    btn.disabled = false;
  }
}

async function loadAudit() {
  const res = await api("GET", "/_redoubt/admin/v1/audit?limit=100");
  const rows = $("audit-rows");
  rows.replaceChildren();
  for (const e of res.entries) {
    const tr = document.createElement("tr");
    cell(tr, when(e.ts)); cell(tr, e.admin); cell(tr, e.action); cell(tr, e.target); cell(tr, e.detail);
    rows.appendChild(tr);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  for (const b of document.querySelectorAll("nav button[data-view]")) b.addEventListener("click", () => show(b.dataset.view));
  $("user-search").addEventListener("submit", (e) => { e.preventDefault(); state.userFrom = 0; loadUsers().catch((err) => status(err.message, true)); });
  $("user-prev").addEventListener("click", () => { state.userFrom = Math.max(0, state.userFrom - state.pageSize); loadUsers(); });
  $("user-next").addEventListener("click", () => { state.userFrom += state.pageSize; loadUsers(); });
  $("room-prev").addEventListener("click", () => { state.roomFrom = Math.max(0, state.roomFrom - state.pageSize); loadRooms(); });
  $("room-next").addEventListener("click", () => { state.roomFrom += state.pageSize; loadRooms(); });
  $("new-user").addEventListener("submit", createUser);
  $("new-token").addEventListener("submit", createToken);
  $("export-start").addEventListener("click", exportInstance);
  if (state.token) start(); else show("login");
});
