// The counsellors' page: sign in, consent with the witness, the sealed record,
// submission with upload progress, the receipt, and the counsellor's own list.
//
// Safety rules this file keeps (the page's Content-Security-Policy enforces
// the first two):
// - No HTML is ever built from strings: text goes in with textContent, elements
//   with createElement (Trusted Types are required, so innerHTML would throw).
// - Requests go to this origin only (connect-src 'self').
// - The witness's data lives in the form and in this module's memory only:
//   nothing is written to localStorage, sessionStorage, IndexedDB or cookies,
//   and the form is cleared after a successful submission and at sign-out.
//   Fields carry autocomplete="off" and spellcheck="false", so the browser's
//   autofill store and any cloud spell checker never see them.

const RECORD_SCHEMA = "statement-record/v1";
const CSRF_COOKIE = "intake_csrf";
const PURPOSES = [
  "risks_explained", "withdrawal_explained", "storage",
  "identity_disclosure_to_court", "willingness_to_testify", "publication_or_advocacy",
];

const state = {
  csrf: "",
  account: null,
  formOwner: null,
  checking: false, // the problem box lists what the page found missing
  bodies: [],
  answeredAt: new Map(), // consent key -> ISO time of the answer
  receipt: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------ messages

function say(message) {
  $("status").textContent = message;
}

function showProblem(problem, { focus = true } = {}) {
  const box = $("problem");
  box.replaceChildren();
  box.append(el("p", { class: "problem-title", text: problem.title || "Request failed" }));
  if (problem.detail) box.append(el("p", { text: problem.detail }));
  if (Array.isArray(problem.errors) && problem.errors.length) {
    const list = el("ul");
    for (const item of problem.errors) {
      const field = item.field ? `${item.field}: ` : "";
      list.append(el("li", { text: `${field}${item.message || item.code || ""}` }));
    }
    box.append(list);
  }
  if (problem.request_id) box.append(el("p", { class: "help", text: `Request id ${problem.request_id}` }));
  box.hidden = false;
  if (focus) box.focus();
}

function clearProblem() {
  state.checking = false;
  $("problem").hidden = true;
  $("problem").replaceChildren();
}

function parseProblem(status, text) {
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc === "object") return { status, ...doc };
  } catch (_err) { /* not JSON: fall through */ }
  return { status, title: `The server answered ${status}` };
}

// ------------------------------------------------------------------- the API

function readCsrfCookie() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function api(method, path, json) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  const text = response.status === 204 ? "" : await response.text();
  if (!response.ok) {
    const problem = parseProblem(response.status, text);
    if (response.status === 401 && path !== "/api/v1/auth/login") sessionEnded();
    throw problem;
  }
  return text ? JSON.parse(text) : null;
}

// ------------------------------------------------------------------- sign in

function showSection(id, shown) {
  $(id).hidden = !shown;
}

function signedIn(account) {
  // Entries kept across an expired session belong to the account that typed them.
  if (state.formOwner && state.formOwner !== account.id) clearStatementForm();
  state.formOwner = account.id;
  state.account = account;
  $("who").textContent = `${account.username} (${account.role})`;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  showSection("login-section", false);
  $("login-form").reset();
  if (account.role !== "counsellor") {
    say("This page is for counsellors; your account has another role.");
    return;
  }
  showSection("statement-section", true);
  showSection("list-section", true);
  say("");
  loadBodies().catch(showProblem);
  loadList().catch(showProblem);
}

function signedOut(message) {
  state.account = null;
  state.formOwner = null;
  state.csrf = "";
  clearStatementForm();
  clearReceipt();
  $("list-body").replaceChildren();
  $("who").hidden = true;
  $("sign-out").hidden = true;
  for (const id of ["statement-section", "receipt-section", "list-section"]) showSection(id, false);
  showSection("login-section", true);
  say(message || "");
}

// The session expired (idle or absolute limit): ask to sign in again but keep
// the entries in the (hidden) form, so a long interview is not lost.
function sessionEnded() {
  state.csrf = "";
  $("who").hidden = true;
  $("sign-out").hidden = true;
  for (const id of ["statement-section", "receipt-section", "list-section"]) showSection(id, false);
  showSection("login-section", true);
  say("Your session has ended; sign in again. Your entries are kept until you sign out.");
}

async function login(event) {
  event.preventDefault();
  clearProblem();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username || !password) {
    showProblem({ title: "Enter your user name and password" });
    return;
  }
  try {
    const answer = await api("POST", "/api/v1/auth/login", { username, password });
    state.csrf = answer.csrf_token;
    signedIn(answer.account);
  } catch (problem) {
    $("login-password").value = "";
    showProblem(problem);
  }
}

async function logout() {
  clearProblem();
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (_problem) { /* the session is gone either way */ }
  signedOut("Signed out.");
}

async function resume() {
  try {
    const account = await api("GET", "/api/v1/auth/me");
    state.csrf = readCsrfCookie();
    signedIn(account);
  } catch (_problem) {
    signedOut("");
  }
}

// ------------------------------------------------------------------- consent

function nowIso() {
  return new Date().toISOString();
}

function timeLabel(iso) {
  return `answered ${iso.slice(0, 16).replace("T", " ")} UTC`;
}

function radioGroup(name, onAnswer, values = ["yes", "no"]) {
  const group = el("span", { class: "radios" });
  for (const value of values) {
    const id = `${name}-${value}`;
    const input = el("input", { type: "radio", name, id, value, required: "" });
    input.addEventListener("change", () => onAnswer(value));
    group.append(el("span", { class: "radio" }, input, el("label", { for: id, text: value })));
  }
  return group;
}

function buildPurposeQuestions() {
  for (const block of document.querySelectorAll(".question[data-purpose]")) {
    const purpose = block.dataset.purpose;
    const answers = block.querySelector(".answers");
    const stamp = el("span", { class: "stamp", id: `stamp-${purpose}` });
    answers.append(" ", radioGroup(`consent-${purpose}`, () => {
      const at = nowIso();
      state.answeredAt.set(purpose, at);
      stamp.textContent = timeLabel(at);
    }), stamp);
  }
}

async function loadBodies() {
  const bodies = await api("GET", "/api/v1/bodies");
  state.bodies = bodies;
  renderBodies();
}

// Rendering again (after signing in again) keeps the answers already given.
function renderBodies() {
  const box = $("bodies");
  const kept = [...box.querySelectorAll("input:checked")].map((input) => input.id);
  box.replaceChildren();
  if (!state.bodies.length) {
    box.append(el("p", { class: "problem", text: "No receiving body is set up: ask an administrator." }));
    return;
  }
  for (const body of state.bodies) {
    const key = `body:${body.id}`;
    const titleId = `body-title-${body.id}`;
    const stamp = el("span", { class: "stamp" });
    const touch = () => {
      const at = nowIso();
      state.answeredAt.set(key, at);
      stamp.textContent = timeLabel(at);
    };
    const kinds = body.key_kinds.length ? body.key_kinds.join(", ") : "no active key";
    const card = el("div", { class: "body-card", "data-body-id": body.id },
      el("h4", { id: titleId, text: body.name }),
      el("p", { class: "help", text: `${body.description ? `${body.description} · ` : ""}keys: ${kinds}` }));
    const share = el("p", { class: "answers", role: "radiogroup", "aria-labelledby": titleId },
      `May the statement be sent to ${body.name}? `);
    share.append(radioGroup(`share-${body.id}`, touch));
    const onward = el("p", { class: "answers", role: "radiogroup", "aria-label": `${body.name}: onward to courts` },
      "May this body pass it on to a court? ");
    onward.append(radioGroup(`onward-${body.id}`, touch));
    if (state.answeredAt.has(key)) stamp.textContent = timeLabel(state.answeredAt.get(key));
    card.append(share, onward, stamp);
    if (!body.active_recipients) {
      card.querySelector(`#share-${CSS.escape(body.id)}-yes`).disabled = true;
      card.append(el("p", { class: "help", text: "This body has no active key yet, so it cannot receive statements." }));
    }
    box.append(card);
  }
  for (const id of kept) {
    const input = document.getElementById(id);
    if (input && !input.disabled) input.checked = true;
  }
}

function checked(name) {
  const input = document.querySelector(`input[name="${CSS.escape(name)}"]:checked`);
  return input ? input.value : null;
}

// ------------------------------------------------------------------ the form

function value(id) {
  return $(id).value.trim();
}

function optional(id) {
  const v = value(id);
  return v === "" ? undefined : v;
}

function lines(id) {
  return $(id).value.split("\n").map((s) => s.trim()).filter((s) => s !== "");
}

function incidentRow() {
  const n = document.querySelectorAll(".incident").length + 1;
  const id = `incident-${Date.now()}-${n}`;
  const field = (suffix, label, control) => {
    control.id = `${id}-${suffix}`;
    return el("p", {}, el("label", { for: control.id, text: label }), control);
  };
  const language = $("routing-language").value;
  const contentAttrs = { class: "content", spellcheck: "false", lang: language };
  const remove = el("button", { type: "button", class: "secondary", text: "Remove this incident" });
  const row = el("div", { class: "incident grid" },
    field("occurred", "When (YYYY[-MM[-DD]])", el("input", { pattern: "[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?", spellcheck: "false" })),
    field("place", "Place", el("input", { maxlength: "500", ...contentAttrs })),
    field("units", "Units involved (one a line)", el("textarea", { rows: "2", ...contentAttrs })),
    field("description", "What happened *", el("textarea", { rows: "4", required: "", ...contentAttrs, class: "content wide" })),
    el("p", {}, remove));
  row.querySelector(`#${id}-description`).parentElement.classList.add("wide");
  remove.addEventListener("click", () => {
    row.remove();
    $("add-incident").focus();
  });
  $("incidents").append(row);
  row.querySelector("input").focus();
}

function incidents() {
  const out = [];
  for (const row of document.querySelectorAll(".incident")) {
    const get = (suffix) => row.querySelector(`[id$="-${suffix}"]`).value.trim();
    const description = get("description");
    const occurred = get("occurred");
    const place = get("place");
    const units = get("units").split("\n").map((s) => s.trim()).filter(Boolean);
    if (!description && !occurred && !place && !units.length) continue;
    out.push({ description, occurred: occurred || undefined, place: place || undefined, units_involved: units });
  }
  return out;
}

function consentRecord() {
  const consent = {};
  for (const purpose of PURPOSES) {
    const answer = checked(`consent-${purpose}`);
    if (answer) consent[purpose] = { answer, answered_at: state.answeredAt.get(purpose) };
  }
  consent.sharing = [];
  for (const body of state.bodies) {
    const answer = checked(`share-${body.id}`);
    const onward = checked(`onward-${body.id}`);
    if (answer === null && onward === null) continue;
    consent.sharing.push({
      body_id: body.id, answer, onward_to_courts: onward,
      answered_at: state.answeredAt.get(`body:${body.id}`),
    });
  }
  consent.explained_in_language = value("consent-language");
  consent.taken_by = lines("consent-taken-by");
  const recording = $("consent-recording").value;
  if (recording !== "") consent.recording_attachment = Number(recording);
  return consent;
}

// What the page can tell before sending; the server checks everything again.
function consentProblems(consent) {
  const problems = [];
  for (const purpose of PURPOSES) {
    if (!consent[purpose]) problems.push({ field: `consent: ${purpose.replaceAll("_", " ")}`, message: "needs the witness's answer" });
  }
  for (const body of state.bodies) {
    const entry = consent.sharing.find((s) => s.body_id === body.id);
    if (entry && (!entry.answer || !entry.onward_to_courts)) {
      problems.push({ field: `consent: ${body.name}`, message: "answer both questions, or neither" });
    }
  }
  for (const purpose of ["storage", "risks_explained", "withdrawal_explained"]) {
    if (consent[purpose] && consent[purpose].answer !== "yes") {
      problems.push({ field: `consent: ${purpose.replaceAll("_", " ")}`, message: "must be yes, or nothing can be sealed" });
    }
  }
  if (!consent.sharing.some((s) => s.answer === "yes")) {
    problems.push({ field: "consent: receiving bodies", message: "the witness must choose at least one body, or nothing can be sealed" });
  }
  return problems;
}

function buildRecord() {
  const translationText = $("translation-text").value;
  const sealed = {
    witness: {
      name: value("witness-name"),
      aliases: lines("witness-aliases"),
      date_of_birth: optional("witness-dob"),
      contact: optional("witness-contact"),
      alias_identity_link: optional("witness-alias-link"),
    },
    service: {
      former_unit: optional("service-unit"),
      rank: optional("service-rank"),
      service_number: optional("service-number"),
      role: optional("service-role"),
      served_from: optional("service-from"),
      served_to: optional("service-to"),
    },
    interview: {
      started_at: value("interview-started") ? new Date(value("interview-started")).toISOString() : "",
      place: value("interview-place"),
      mode: value("interview-mode"),
      interviewers: lines("interview-interviewers"),
      persons_present: lines("interview-present"),
      interpreter: optional("interview-interpreter"),
      language_pair: optional("interview-language-pair"),
    },
    incidents: incidents(),
    follow_up: {
      willing_to_testify: value("follow-testify"),
      may_be_contacted: $("follow-contact").checked,
      safe_channel: optional("follow-channel"),
    },
    risk: {
      level: value("risk-level"),
      assessment: value("risk-assessment"),
      protection_needs: lines("risk-needs"),
    },
    consent: consentRecord(),
  };
  if (translationText.trim() !== "") {
    sealed.translation = {
      language: value("translation-language"),
      text: translationText,
      translator: optional("translation-translator"),
    };
  }
  const routing = {
    language: value("routing-language"),
    script: value("routing-script"),
    priority: value("routing-priority"),
    restricted: $("routing-restricted").checked,
    amends: optional("routing-amends"),
  };
  return { schema: RECORD_SCHEMA, sealed, routing };
}

// While the list of what is missing shows, it shrinks as the fields are filled.
function recheck() {
  if (!state.checking) return;
  const problems = [...formProblems(), ...consentProblems(consentRecord())];
  if (problems.length) showProblem({ title: "The statement is not complete", errors: problems }, { focus: false });
  else clearProblem();
}

function formProblems() {
  const problems = [];
  for (const control of $("statement-form").querySelectorAll("input, select, textarea")) {
    if (control.type === "radio") continue; // consent answers are checked on their own
    if (!control.checkValidity()) {
      const label = document.querySelector(`label[for="${CSS.escape(control.id)}"]`);
      problems.push({ field: label ? label.textContent.replace(" *", "") : control.id, message: control.validationMessage });
    }
  }
  return problems;
}

// ---------------------------------------------------------------- submission

function submit(event) {
  event.preventDefault();
  clearProblem();
  const record = buildRecord();
  const problems = [...formProblems(), ...consentProblems(record.sealed.consent)];
  if (problems.length) {
    showProblem({ title: "The statement is not complete", errors: problems });
    state.checking = true;
    return;
  }
  // Part order matters: the record decides the keys every later part is sealed to.
  const form = new FormData();
  form.append("record", new Blob([JSON.stringify(record)], { type: "application/json" }), "record.json");
  form.append("text", new Blob([$("statement-text").value], { type: "text/plain;charset=utf-8" }), "statement.txt");
  for (const file of $("attachments").files) form.append("attachment", file, file.name);

  // XMLHttpRequest rather than fetch(): only it reports upload progress. The
  // browser streams the FormData body (files are read as they are sent).
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/v1/statements");
  xhr.setRequestHeader("X-CSRF-Token", state.csrf);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.withCredentials = true;
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    const percent = Math.floor((e.loaded / e.total) * 100);
    $("progress").value = percent;
    $("progress-text").textContent = `${percent} % of ${formatBytes(e.total)}`;
  });
  xhr.upload.addEventListener("load", () => {
    $("progress").value = 100;
    $("progress-text").textContent = "sent; sealing…";
  });
  xhr.addEventListener("load", () => {
    setBusy(false);
    if (xhr.status === 201) {
      const receipt = JSON.parse(xhr.responseText);
      clearStatementForm();
      showSection("statement-section", false);
      showReceipt(receipt);
      say(`Sealed: statement ${receipt.statement_id}.`);
      loadList().catch(showProblem);
    } else {
      if (xhr.status === 401) sessionEnded();
      showProblem(parseProblem(xhr.status, xhr.responseText));
      say("Nothing was stored.");
    }
  });
  const failed = (message) => () => {
    setBusy(false);
    showProblem({ title: message, detail: "Nothing was stored; the form still holds your entries." });
  };
  xhr.addEventListener("error", failed("The connection failed"));
  xhr.addEventListener("abort", failed("The upload was cancelled"));
  setBusy(true);
  say("Sending…");
  xhr.send(form);
}

function setBusy(busy) {
  $("submit").disabled = busy;
  $("clear-form").disabled = busy;
  $("progress-row").hidden = !busy && $("progress").value === 0;
  $("statement-form").setAttribute("aria-busy", busy ? "true" : "false");
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function clearStatementForm() {
  $("statement-form").reset();
  $("incidents").replaceChildren();
  $("attachment-list").replaceChildren();
  $("consent-recording").replaceChildren(el("option", { value: "", text: "none" }));
  for (const stamp of document.querySelectorAll(".stamp")) stamp.textContent = "";
  state.answeredAt.clear();
  $("progress").value = 0;
  $("progress-text").textContent = "";
  $("progress-row").hidden = true;
  applyLanguage();
}

function listAttachments() {
  const list = $("attachment-list");
  const select = $("consent-recording");
  list.replaceChildren();
  select.replaceChildren(el("option", { value: "", text: "none" }));
  [...$("attachments").files].forEach((file, index) => {
    const label = `${index + 1}. ${file.name} (${formatBytes(file.size)})`;
    list.append(el("li", { text: `${file.name} · ${file.type || "unknown type"} · ${formatBytes(file.size)}` }));
    select.append(el("option", { value: String(index), text: label }));
  });
}

// Free text is in the statement's language: tell the browser (fonts, screen readers).
function applyLanguage() {
  const language = $("routing-language").value;
  for (const node of document.querySelectorAll(".content")) node.setAttribute("lang", language);
  $("translation-text").setAttribute("lang", $("translation-language").value || "en");
}

// ------------------------------------------------------------------- receipt

function clearReceipt() {
  state.receipt = null;
  showSection("receipt-section", false);
}

function showReceipt(receipt) {
  state.receipt = receipt;
  $("r-id").textContent = receipt.statement_id;
  $("r-created").textContent = receipt.created_at;
  $("r-status").textContent = receipt.status;
  $("r-amends").textContent = receipt.amends || "—";
  $("r-seq").textContent = String(receipt.audit.seq);
  $("r-hash").textContent = receipt.audit.entry_hash;
  $("r-checkpoint").textContent = receipt.checkpoint || "(no checkpoint signed yet)";
  const copies = $("r-copies");
  copies.replaceChildren();
  for (const copy of receipt.copies) {
    const bodies = copy.bodies.map((id) => bodyName(id)).join(", ");
    const list = el("dl", { class: "receipt" },
      el("dt", { text: "Key kind" }), el("dd", { text: copy.key_kind }),
      el("dt", { text: "Bodies" }), el("dd", { text: bodies }),
      el("dt", { text: "statement.age" }),
      el("dd", { class: "mono", text: `${copy.statement.sha256} (${copy.statement.size} bytes)` }));
    copy.attachments.forEach((blob, i) => {
      list.append(el("dt", { text: `attachment ${i + 1}` }),
        el("dd", { class: "mono", text: `${blob.sha256} (${blob.size} bytes)` }));
    });
    copies.append(list);
  }
  showSection("receipt-section", true);
  $("receipt-section").focus();
}

function bodyName(id, withId = true) {
  const body = state.bodies.find((b) => b.id === id);
  if (!body) return id;
  return withId ? `${body.name} (${id})` : body.name;
}

function saveJson(document_, filename) {
  const blob = new Blob([`${JSON.stringify(document_, null, 2)}\n`], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// --------------------------------------------------------- own submissions

async function loadList() {
  const rows = await api("GET", "/api/v1/statements?limit=100");
  const tbody = $("list-body");
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { colspan: "10", text: "No statements yet." })));
    return;
  }
  for (const row of rows) {
    const r = row.routing;
    const button = el("button", { type: "button", class: "secondary", text: "Save" });
    button.setAttribute("aria-label", `Save the receipt of statement ${r.record_id} as JSON`);
    button.addEventListener("click", () => {
      clearProblem();
      api("GET", `/api/v1/statements/${encodeURIComponent(r.record_id)}/receipt`)
        .then((receipt) => saveJson(receipt, `receipt-${r.record_id}.json`))
        .catch(showProblem);
    });
    const status = row.status + (row.withdrawn_at ? ` (${row.withdrawn_at.slice(0, 10)})` : "");
    tbody.append(el("tr", {},
      el("td", { class: "nowrap", text: r.created_at.slice(0, 16).replace("T", " ") }),
      el("td", { class: "mono", text: r.record_id }),
      el("td", { text: status }),
      el("td", { text: r.bodies.map((b) => `${bodyName(b.body_id, false)} (${b.key_kind})`).join("; ") }),
      el("td", { text: `${r.language}-${r.script}` }),
      el("td", { text: `${r.text_encoding}, ${formatBytes(r.sizes.text_bytes)}` }),
      el("td", { text: r.priority + (r.restricted ? ", restricted" : "") }),
      el("td", { text: String(r.sizes.attachment_bytes.length) }),
      el("td", { text: String(row.audit.seq) }),
      el("td", {}, button)));
  }
}

// ---------------------------------------------------------------- wiring

function start() {
  buildPurposeQuestions();
  $("login-form").addEventListener("submit", login);
  $("sign-out").addEventListener("click", logout);
  $("statement-form").addEventListener("submit", submit);
  $("statement-form").addEventListener("input", recheck);
  $("statement-form").addEventListener("change", recheck);
  $("add-incident").addEventListener("click", incidentRow);
  $("attachments").addEventListener("change", listAttachments);
  $("routing-language").addEventListener("change", applyLanguage);
  $("translation-language").addEventListener("change", applyLanguage);
  $("clear-form").addEventListener("click", () => {
    if (window.confirm("Clear every field of this statement?")) clearStatementForm();
  });
  $("new-statement").addEventListener("click", () => {
    clearReceipt();
    showSection("statement-section", true);
    $("witness-name").focus();
  });
  $("save-receipt").addEventListener("click", () => {
    if (state.receipt) saveJson(state.receipt, `receipt-${state.receipt.statement_id}.json`);
  });
  $("refresh-list").addEventListener("click", () => loadList().catch(showProblem));
  applyLanguage();
  resume();
}

start();
