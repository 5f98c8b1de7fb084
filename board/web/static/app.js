// bulkhead board UI: plain JavaScript over the /v1 API. Everything the
// server sends is inserted as text, never as HTML.
"use strict";

const STATES = ["backlog", "in_progress", "verification", "done"];
const $ = (sel) => document.querySelector(sel);
let admin = false;
let pollTimer = null;
let logAbort = null;

function token() { return sessionStorage.getItem("bh_token") || ""; }

// el builds an element: el("div", {class: "x"}, "text", child, ...).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

function showError(msg) {
  const box = $("#error");
  if (!msg) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = msg;
  box.hidden = false;
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const opts = { method, headers: { "Authorization": "Bearer " + token() } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401) { signOut(); }
    throw new APIError(resp.status, err.code || "", err.message || ("HTTP " + resp.status));
  }
  return data;
}

// act runs an action and shows its error instead of throwing.
async function act(fn) {
  showError("");
  try { await fn(); } catch (e) { showError(e.message); }
}

function signOut() {
  sessionStorage.removeItem("bh_token");
  location.hash = "#/signin";
}

function crumbs(...parts) {
  const nav = $("#crumbs");
  nav.replaceChildren();
  parts.forEach((p, i) => {
    if (i > 0) nav.append(" / ");
    nav.append(p.href ? el("a", { href: p.href, text: p.text }) : el("span", { text: p.text }));
  });
}

function stopLive() {
  if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  if (logAbort) { logAbort.abort(); logAbort = null; }
}

async function route() {
  stopLive();
  showError("");
  const h = location.hash || "#/";
  const main = $("#main");
  $("#signout").hidden = !token();
  if (!token() && h !== "#/signin") { location.hash = "#/signin"; return; }
  let m;
  try {
    if (h === "#/signin") return viewSignIn(main);
    if ((m = h.match(/^#\/p\/([a-z0-9][a-z0-9_-]*)\/t\/(\d+)$/))) return await viewTicket(main, m[1], m[2]);
    if ((m = h.match(/^#\/p\/([a-z0-9][a-z0-9_-]*)\/settings$/))) return await viewSettings(main, m[1]);
    if ((m = h.match(/^#\/p\/([a-z0-9][a-z0-9_-]*)$/))) return await viewBoard(main, m[1]);
    return await viewHome(main);
  } catch (e) {
    showError(e.message);
  }
}

function viewSignIn(main) {
  crumbs({ text: "sign in" });
  const input = el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "bh_…" });
  const form = el("form", { id: "signin-form", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    act(async () => {
      sessionStorage.setItem("bh_token", input.value.trim());
      try { await api("GET", "/v1/workspaces"); }
      catch (e) { sessionStorage.removeItem("bh_token"); throw new Error("Sign-in failed: " + e.message); }
      location.hash = "#/";
    });
  } },
    el("h1", { text: "Sign in" }),
    el("p", { class: "muted", text: "Paste an API token: the admin token from the server's state dir, or a token made with `bulkhead token create <workspace>`." }),
    el("label", { for: "token", text: "Token" }), input,
    el("button", { id: "signin", type: "submit", text: "Sign in" }));
  main.replaceChildren(form);
  input.focus();
}

async function detectAdmin() {
  try { await api("GET", "/v1/heartbeat"); admin = true; }
  catch (e) { if (e.status === 401) throw e; admin = false; }
  $("#who").textContent = admin ? "admin" : "workspace token";
}

async function viewHome(main) {
  crumbs({ text: "projects" });
  await detectAdmin();
  const workspaces = await api("GET", "/v1/workspaces");
  let projects = [];
  if (admin) {
    projects = await api("GET", "/v1/projects");
  } else {
    for (const w of workspaces) {
      try { projects.push(await api("GET", `/v1/workspaces/${w.id}/project`)); } catch (e) { if (e.status !== 404) throw e; }
    }
  }
  const list = el("table", { id: "projects" },
    el("tr", {}, el("th", { text: "Project" }), el("th", { text: "Persona" }), el("th", { text: "Model" }), el("th", { text: "Repository" })),
    projects.map((p) => el("tr", {},
      el("td", {}, el("a", { href: `#/p/${p.id}`, class: "project-link", "data-id": p.id, text: p.id })),
      el("td", { text: p.persona }), el("td", { text: `${p.provider}/${p.model}` }), el("td", { text: p.repo }))));
  const parts = [el("h1", { text: "Projects" }), el("div", { class: "card" }, projects.length ? list : el("p", { class: "muted", text: "No projects yet." }))];
  if (admin) parts.push(await newProjectForm());
  const ws = el("div", { class: "card grow" }, el("h2", { text: "Workspaces" }),
    el("table", {}, el("tr", {}, el("th", { text: "Id" }), el("th", { text: "Persona" }), el("th", { text: "Memory" }), el("th", { text: "Created" })),
      workspaces.map((w) => el("tr", {}, el("td", { text: w.id }), el("td", { text: w.config.persona }), el("td", { text: String(w.config.limits.memory) }), el("td", { text: new Date(w.created_at).toLocaleString() })))));
  const side = [ws];
  if (admin) side.push(await heartbeatCard());
  parts.push(el("div", { class: "row" }, side));
  main.replaceChildren(...parts);
}

async function heartbeatCard() {
  const hb = await api("GET", "/v1/heartbeat");
  const out = el("span", { id: "heartbeat-result", class: "muted" });
  const live = hb.leases.filter((l) => !l.released && new Date(l.expires) > new Date());
  return el("div", { class: "card grow", id: "heartbeat" },
    el("h2", { text: "Heartbeat" }),
    el("p", { text: `Concurrency ${hb.concurrency}; ${hb.running} running in this server; ${live.length} live lease(s).` }),
    el("p", { id: "last-beat", class: "muted", text: hb.last
      ? `Last heartbeat ${new Date(hb.last.finished).toLocaleString()} by ${hb.last.holder}: ${hb.last.report.claimed} claimed, ${hb.last.report.succeeded} succeeded, ${hb.last.report.failed} failed` + (hb.last.error ? ` (${hb.last.error})` : "")
      : "No heartbeat has run in this server yet." }),
    live.map((l) => el("p", { class: "muted", text: `${l.project}#${l.ticket}: run ${l.token} by ${l.holder}, lease until ${new Date(l.expires).toLocaleTimeString()}` })),
    el("button", { id: "run-heartbeat", class: "secondary", onclick: (ev) => act(async () => {
      ev.target.disabled = true;
      out.textContent = " running…";
      try {
        const r = await api("POST", "/v1/heartbeat");
        out.textContent = ` ${r.claimed} claimed, ${r.succeeded} succeeded, ${r.failed} failed`;
      } finally { ev.target.disabled = false; }
    }) }, "Run heartbeat now"), out);
}

async function personaSelect(id, selected) {
  let names = ["developer", "reviewer", "project-manager"];
  if (admin) { try { names = (await api("GET", "/v1/personas")).map((p) => p.name); } catch (e) { /* keep built-ins */ } }
  return el("select", { id }, names.map((n) => el("option", { value: n, selected: n === selected, text: n })));
}

async function newProjectForm() {
  const id = el("input", { id: "project-id", placeholder: "my-project" });
  const repo = el("input", { id: "project-repo", placeholder: "https://… or /path/to/repo" });
  const persona = await personaSelect("project-persona", "developer");
  return el("form", { id: "new-project", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    act(async () => {
      const p = await api("POST", "/v1/projects", { id: id.value.trim(), repo: repo.value.trim(), persona: persona.value });
      location.hash = `#/p/${p.id}`;
    });
  } },
    el("h2", { text: "New project" }),
    el("label", { for: "project-id", text: "Id" }), id,
    el("label", { for: "project-repo", text: "Git repository (URL or local path)" }), repo,
    el("label", { for: "project-persona", text: "Persona" }), persona,
    el("button", { id: "create-project", type: "submit", text: "Create project" }));
}

function ticketCard(p, t) {
  return el("a", { class: "ticket", href: `#/p/${p}/t/${t.id}`, "data-ticket": String(t.id), "data-state": t.state },
    el("div", {}, el("span", { class: "tag", text: `#${t.id}` }), el("span", { class: "tag", text: t.kind }), el("span", { class: "tag", text: `P${t.priority}` })),
    el("div", { text: t.title }));
}

async function viewBoard(main, p) {
  await detectAdmin();
  crumbs({ text: "projects", href: "#/" }, { text: p });
  const project = await api("GET", `/v1/workspaces/${p}/project`);
  const render = async () => {
    const tickets = await api("GET", `/v1/workspaces/${p}/tickets`);
    const cols = STATES.map((s) => {
      const ts = tickets.filter((t) => t.state === s);
      return el("div", { class: "column", id: `col-${s}` }, el("h2", {}, el("span", { text: s.replace("_", " ") }), el("span", { class: "muted", text: String(ts.length) })), ts.map((t) => ticketCard(p, t)));
    });
    const board = $("#columns");
    if (board) board.replaceChildren(...cols);
  };
  const title = el("input", { id: "ticket-title" });
  const kind = el("select", { id: "ticket-kind" }, ["feature", "bug", "chore"].map((k) => el("option", { value: k, text: k })));
  const prio = el("select", { id: "ticket-priority" }, [0, 1, 2, 3].map((n) => el("option", { value: String(n), selected: n === 2, text: `P${n}` })));
  const desc = el("textarea", { id: "ticket-description" });
  const crit = el("textarea", { id: "ticket-criteria" });
  const form = el("form", { id: "new-ticket", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    act(async () => {
      const t = await api("POST", `/v1/workspaces/${p}/tickets`, { title: title.value, kind: kind.value, priority: Number(prio.value), description: desc.value, criteria: crit.value });
      location.hash = `#/p/${p}/t/${t.id}`;
    });
  } },
    el("h2", { text: "New ticket" }),
    el("label", { for: "ticket-title", text: "Title" }), title,
    el("div", { class: "row" }, el("div", { class: "grow" }, el("label", { for: "ticket-kind", text: "Kind" }), kind), el("div", { class: "grow" }, el("label", { for: "ticket-priority", text: "Priority" }), prio)),
    el("label", { for: "ticket-description", text: "Description" }), desc,
    el("label", { for: "ticket-criteria", text: "Acceptance criteria" }), crit,
    el("button", { id: "create-ticket", type: "submit", text: "Open ticket" }));
  main.replaceChildren(
    el("h1", {}, `${project.id} `, el("span", { class: "muted", text: `· ${project.persona} · ${project.provider}/${project.model} · ${project.default_branch}` })),
    el("p", {}, el("a", { href: `#/p/${p}/settings`, id: "settings-link", text: "Project settings" })),
    el("div", { class: "columns", id: "columns" }),
    form);
  await render();
  pollTimer = setInterval(() => render().catch((e) => showError(e.message)), 3000);
}

async function viewSettings(main, p) {
  await detectAdmin();
  crumbs({ text: "projects", href: "#/" }, { text: p, href: `#/p/${p}` }, { text: "settings" });
  const project = await api("GET", `/v1/workspaces/${p}/project`);
  const cfg = await api("GET", `/v1/workspaces/${p}/config`);
  const persona = await personaSelect("settings-persona", project.persona);
  const provider = el("input", { id: "settings-provider", value: project.provider });
  const model = el("input", { id: "settings-model", value: project.model });
  const memory = el("input", { id: "settings-memory", value: String(cfg.limits.memory) });
  const turns = el("input", { id: "settings-max-turns", value: String(cfg.limits.max_turns) });
  const runTimeout = el("input", { id: "settings-run-timeout", value: String(cfg.limits.run_timeout) });
  const saved = el("span", { id: "notice" });
  const form = el("form", { id: "settings", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    act(async () => {
      await api("PATCH", `/v1/workspaces/${p}/project`, { persona: persona.value, provider: provider.value.trim(), model: model.value.trim() });
      await api("PATCH", `/v1/workspaces/${p}/config`, { set: { "limits.memory": memory.value.trim(), "limits.max_turns": Number(turns.value), "limits.run_timeout": runTimeout.value.trim() } });
      saved.textContent = " Saved.";
    });
  } },
    el("h1", { text: `Settings of ${p}` }),
    el("p", { class: "muted", text: `Repository ${project.repo}, default branch ${project.default_branch}.` + (admin ? "" : " Only an admin token can change settings.") }),
    el("label", { for: "settings-persona", text: "Persona" }), persona,
    el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: "settings-provider", text: "Provider" }), provider),
      el("div", { class: "grow" }, el("label", { for: "settings-model", text: "Model" }), model)),
    el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: "settings-memory", text: "Sandbox memory" }), memory),
      el("div", { class: "grow" }, el("label", { for: "settings-max-turns", text: "Max turns per run" }), turns),
      el("div", { class: "grow" }, el("label", { for: "settings-run-timeout", text: "Run timeout" }), runTimeout)),
    el("button", { id: "save-settings", type: "submit", disabled: !admin, text: "Save" }), saved);
  main.replaceChildren(form);
}

function commentView(c) {
  return el("div", { class: `comment ${c.kind}`, "data-kind": c.kind, "data-seq": String(c.seq) },
    el("div", { class: "meta", text: `#${c.seq} · ${c.kind} · ${c.author} · ${new Date(c.time).toLocaleString()}` + (c.anchor ? ` · @${c.anchor}` : "") }),
    el("div", { class: "body", text: c.body }));
}

async function viewTicket(main, p, n) {
  crumbs({ text: "projects", href: "#/" }, { text: p, href: `#/p/${p}` }, { text: `#${n}` });
  const base = `/v1/workspaces/${p}/tickets/${n}`;
  const header = el("div", { class: "card", id: "ticket-head" });
  const thread = el("div", { id: "thread" });
  const actions = el("div", { id: "actions", class: "card" });
  const log = el("div", { id: "log" });
  const body = el("textarea", { id: "comment-body", placeholder: "Write a comment. It is also the reason when you return the ticket." });
  const anchor = el("input", { id: "comment-anchor", placeholder: "optional: file:line, commit, criterion" });
  let lastSeq = -1, lastState = "";

  const render = async () => {
    const v = await api("GET", base);
    const t = v.ticket;
    header.replaceChildren(
      el("h1", { id: "ticket-title" }, `#${t.id} `, t.title),
      el("p", {}, el("span", { class: "state", id: "ticket-state", "data-state": t.state, text: t.state }), " · ", t.kind, ` · P${t.priority} · branch ${t.branch || "ticket/" + t.id}`,
        v.running ? el("span", { class: "tag", id: "running", text: "running" }) : null,
        t.merged_as ? ` · shipped as ${t.merged_as.slice(0, 10)}` : ""),
      el("h2", { text: "Description" }), el("div", { class: "pre", text: t.description || "—" }),
      el("h2", { text: "Acceptance criteria" }), el("div", { class: "pre", text: t.criteria || "—" }));
    if (t.comments !== lastSeq) {
      thread.replaceChildren(...v.comments.map(commentView));
      lastSeq = t.comments;
    }
    if (t.state !== lastState || String(v.running) !== actions.dataset.running) {
      lastState = t.state;
      actions.dataset.running = String(v.running);
      const btns = [];
      const move = (state, needsComment) => act(async () => {
        if (needsComment && !body.value.trim()) throw new Error("Write a comment saying why before returning the ticket.");
        await api("POST", `${base}/move`, { state, comment: needsComment ? body.value : "" });
        if (needsComment) body.value = "";
        lastSeq = -1; lastState = "";
        await render();
      });
      if (t.state === "verification") {
        btns.push(el("button", { id: "accept", onclick: () => move("done", false) }, "Accept"));
        btns.push(el("button", { id: "return", class: "danger", onclick: () => move("in_progress", true) }, "Return with comment"));
      }
      if ((t.state === "verification" || t.state === "done") && !t.merged_as) {
        btns.push(el("button", { id: "ship", class: "secondary", onclick: () => act(async () => { await api("POST", `${base}/ship`); lastSeq = -1; lastState = ""; await render(); }) }, "Ship (merge branch)"));
      }
      if (t.state === "backlog" || t.state === "in_progress") {
        btns.push(el("button", { id: "dispatch", class: "secondary", onclick: () => act(async () => { await api("POST", `${base}/dispatch`); }) }, "Run now"));
      }
      if (t.state === "backlog") btns.push(el("button", { id: "start", class: "secondary", onclick: () => move("in_progress", false) }, "Move to in progress"));
      if (t.state === "done") btns.push(el("button", { id: "reopen", class: "danger", onclick: () => move("in_progress", true) }, "Reopen with comment"));
      actions.replaceChildren(el("h2", { text: "Actions" }), ...(btns.length ? btns : [el("p", { class: "muted", text: "Nothing to do here while the agent works." })]));
    }
  };

  const form = el("form", { id: "comment-form", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    act(async () => {
      await api("POST", `${base}/comments`, { body: body.value, anchor: anchor.value.trim() });
      body.value = ""; anchor.value = "";
      await render();
    });
  } },
    el("h2", { text: "Comment" }), body,
    el("label", { for: "comment-anchor", text: "Anchor" }), anchor,
    el("button", { id: "post-comment", type: "submit", text: "Post comment" }));

  main.replaceChildren(
    el("div", { class: "row" },
      el("div", { class: "grow" }, header, el("h2", { text: "Thread" }), thread, form),
      el("div", { class: "grow" }, actions, el("div", { class: "card" }, el("h2", { text: "Live run log" }), log))));
  await render();
  pollTimer = setInterval(() => render().catch((e) => showError(e.message)), 2000);
  streamLog(`${base}/log`, log);
}

// streamLog reads the server-sent events of the run log with fetch, which
// (unlike EventSource) can send the Authorization header.
async function streamLog(url, box) {
  const ctl = new AbortController();
  logAbort = ctl;
  try {
    const resp = await fetch(url, { headers: { "Authorization": "Bearer " + token() }, signal: ctl.signal });
    if (!resp.ok || !resp.body) return;
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let ev = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) ev = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length) {
          box.append(el("div", { class: "log-line", "data-kind": ev, text: `[${ev}] ${data.join("\n")}` }));
          box.scrollTop = box.scrollHeight;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") box.append(el("div", { text: "[log stream closed: " + e.message + "]" }));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  $("#signout").addEventListener("click", signOut);
  route();
});
