// The page's script: what it shows, and the requests it sends to its own origin (health, convert,
// list and return loans), each with the token the access link gave it. Built into one inline script
// by scripts/build-page.mjs; the words it builds from the service's answers are in helpers.ts.
"use strict";
import {
  bookMeta, bookTitle, explain, explainReturn, failureButtons, kindleText, failureText, formatTime, isHttpsUrl, latin1, linkExpiry, liveRecent, loansHidden,
  loanStatus, loanText, notAnAcsm, otherFileKind, progressText, quote, recentDetails, recentToSave, retryable, tokenFromFragment, tokenFromLink,
  tooBigForAcsm, typographic, unreadableFile, withRecent, type Answer, type Loan, type Recent, type ServiceBody,
} from "./helpers";

const TOKEN_KEY = "knock.token";
const RECENT_KEY = "knock.recent";
const SECTIONS = ["need-token", "iam", "choose", "working", "done", "failed"];
let timer: ReturnType<typeof setInterval> | null = null;
let view = "", loansShown = false, loansSeq = 0;
// The loan the result card speaks of, so that returning it updates the card too.
let cardLoan: string | null = null;
// What "Try again" on the failure card runs, if it is shown.
let again: (() => void) | null = null;

/** A request's body for POST /: an ACSM's text (and its file's name) or its address. */
type ConvertRequest = { acsm_content: string; filename: string } | { acsm_url: string; filename?: undefined };

/** The page's element with this id (every id asked for is in index.html). */
function $<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}
function store(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
function getToken(): string {
  const s = store();
  return (s && s.getItem(TOKEN_KEY)) || "";
}
function setToken(t: string): void {
  const s = store();
  if (s) {
    if (t) s.setItem(TOKEN_KEY, t);
    else s.removeItem(TOKEN_KEY);
  }
}

function show(id: string, focus: boolean): void {
  SECTIONS.forEach((s) => { $(s).hidden = s !== id; });
  $("forget").hidden = !getToken();
  view = id;
  syncLoans();
  if (focus) {
    const h = $(id).querySelector("h2");
    if (h) h.focus();
  }
}

// The access link carries the token in its fragment (never sent to a server). Keep it in this
// browser's storage and take it out of the address bar, the history and any bookmark.
function takeFragment(): void {
  if (!window.location.hash) return;
  const t = tokenFromFragment(window.location.hash);
  if (t) setToken(t);
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
takeFragment();
// Opening a new access link in a tab already showing the page changes only the fragment: the page
// is not loaded again, so take the token here too.
window.addEventListener("hashchange", () => { takeFragment(); probe(); });

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { "accept": "application/json" };
  if (json) h["content-type"] = "application/json";
  const t = getToken();
  if (t) h["authorization"] = "Bearer " + t;
  return h;
}

function readAnswer(res: Response): Promise<Answer> {
  return res.text().then((text) => {
    let body: ServiceBody | null = null;
    try {
      body = JSON.parse(text) as ServiceBody | null;
    } catch {
      body = null;
    }
    return { status: res.status, body: body || {} };
  });
}

function needToken(message: string): void {
  $("token-why").textContent = message || "";
  $("token-why").hidden = !message;
  show("need-token", true);
}

// 401: no token or a wrong one; 403 without our error shape: AWS refused an unsigned request
// (function_url_auth = AWS_IAM), which no browser can sign.
function accessProblem(a: Answer): boolean {
  if (a.status === 401) {
    needToken(getToken() ? "The saved access link is not valid any more: the service refused its token (it may have been replaced by a new one)." : "");
    return true;
  }
  if (a.status === 403 && !a.body.error_type) {
    show("iam", true);
    return true;
  }
  return false;
}

function probe(): void {
  fetch("/", { headers: headers(false), cache: "no-store" }).then(readAnswer).then((a) => {
    if (accessProblem(a)) return;
    if (a.status === 200 && a.body.status === "ok") {
      kindleOn = a.body.send_to_kindle === true;
      renderRecent();
      show("choose", false);
      loadLoans();
      return;
    }
    fail(a, probe, false);
  }, () => { failText("Could not reach the service. Check your connection, then try again.", probe); });
}

function stopTimer(): void {
  if (timer) {
    clearInterval(timer);
    timer = null;
  }
}
// The failure card; which of its buttons it shows is failureButtons' choice.
function failText(text: string, retry?: (() => void) | null, choose?: boolean): void {
  stopTimer();
  again = retry || null;
  $("error-text").textContent = typographic(text);
  const buttons = failureButtons(!!again, !!choose);
  $("retry").hidden = !buttons.tryAgain;
  $("choose-again").hidden = !buttons.chooseAnother;
  show("failed", true);
}
function fail(a: Answer, retry: () => void, choose: boolean): void {
  failText(failureText(a), retryable(a) ? retry : null, choose);
}

function loadRecent(): Recent[] {
  const s = store();
  let saved: string | null;
  try {
    saved = s && s.getItem(RECENT_KEY);
  } catch {
    saved = null;
  }
  return liveRecent(saved, Date.now());
}
function saveRecent(list: Recent[]): void {
  const s = store();
  if (s) s.setItem(RECENT_KEY, recentToSave(list));
}
function renderRecent(): void {
  const list = loadRecent();
  saveRecent(list);
  const ul = $("recent-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach((r) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = r.url;
    a.setAttribute("download", r.filename);
    a.textContent = r.filename;
    li.appendChild(a);
    li.appendChild(document.createTextNode(recentDetails(r)));
    const key = r.s3_key;
    if (kindleOn && key) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Send to Kindle";
      b.setAttribute("aria-label", "Send " + r.filename + " to Kindle");
      b.addEventListener("click", () => { sendToKindle(key, b, $("recent-note")); });
      li.appendChild(b);
    }
    ul.appendChild(li);
  });
  $("recent").hidden = list.length === 0;
}

// Send to Kindle (docs/api.md, "Send to Kindle"): POST /kindle names a book the service still holds.
let kindleOn = false;
let cardKey = "";

function sendToKindle(key: string, button: HTMLButtonElement, note: HTMLElement): void {
  button.disabled = true;
  note.hidden = false;
  note.className = "";
  note.textContent = "Sending to your Kindle\u2026";
  fetch("/kindle", { method: "POST", headers: headers(true), body: JSON.stringify({ s3_key: key }), cache: "no-store" }).then(readAnswer).then((a) => {
    button.disabled = false;
    if (accessProblem(a)) return;
    note.textContent = typographic(kindleText(a));
    note.className = a.status === 200 ? "" : "bad";
  }, () => {
    button.disabled = false;
    note.textContent = "The connection to the service was lost: the book may not have been sent. Try again.";
    note.className = "bad";
  });
}

function convert(body: ConvertRequest): void {
  const started = Date.now();
  const sendAgain = (): void => { convert(body); };
  const tick = (): void => { $("progress").textContent = progressText(Date.now() - started); };
  tick();
  show("working", false);
  stopTimer();
  timer = setInterval(tick, 1000);
  fetch("/", { method: "POST", headers: headers(true), body: JSON.stringify(body), cache: "no-store" }).then(readAnswer).then((a) => {
    stopTimer();
    if (accessProblem(a)) return;
    const file = a.body.output_files && a.body.output_files[0];
    a.filename = body.filename;
    if (a.status !== 200 || !file) {
      fail(a, sendAgain, true);
      return;
    }
    $("book-title").textContent = bookTitle(file.filename);
    $("book-meta").textContent = bookMeta(file);
    const link = $<HTMLAnchorElement>("download");
    link.href = file.download_url;
    link.setAttribute("download", file.filename);
    link.setAttribute("aria-label", "Download " + file.filename);
    $("expires").textContent = linkExpiry(file);
    const loan = a.body.loan;
    cardLoan = loan ? loan.id : null;
    $("book-loan").textContent = loan ? loanText(loan) : "";
    $("book-loan").hidden = !loan;
    if (loan) loadLoans();
    cardKey = file.s3_key ?? "";
    $("kindle").hidden = !kindleOn || !cardKey;
    $("kindle-note").hidden = true;
    saveRecent(withRecent(loadRecent(), { filename: file.filename, url: file.download_url, size_bytes: file.size_bytes, expires_at: file.expires_at, s3_key: file.s3_key }));
    renderRecent();
    show("done", true);
  }, () => { failText("The connection to the service was lost. Check your connection, then try again.", sendAgain); });
}

// Library loans (docs/api.md, "Library loans"): listed from GET /loans, returned early with an
// inline confirmation (window.confirm is suppressed by some mobile browsers).
function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}
function syncLoans(): void {
  $("loans").hidden = loansHidden(loansShown, view);
}
function note(text: string, bad: boolean): void {
  const n = $("loan-note");
  n.textContent = typographic(text);
  n.className = bad ? "bad" : "";
  if (text) loansShown = true;
  syncLoans();
}

function loadLoans(): void {
  const seq = ++loansSeq;
  fetch("/loans", { headers: headers(false), cache: "no-store" }).then(readAnswer).then((a) => {
    if (seq !== loansSeq || accessProblem(a)) return;
    if (a.status === 200 && Array.isArray(a.body.loans)) renderLoans(a.body.loans as Loan[]);
    else if (a.status !== 404) note("Could not list your loans: " + explain(a), true);
  }, () => { if (seq === loansSeq) note("Could not list your loans: the service could not be reached.", true); });
}

function renderLoans(list: Loan[]): void {
  const ul = $("loan-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach((l) => { ul.appendChild(loanItem(l)); });
  $("loans-empty").hidden = list.length > 0;
  loansShown = list.length > 0 || $("loan-note").textContent !== "";
  syncLoans();
}

function loanItem(l: Loan): HTMLLIElement {
  const li = el("li");
  if (l.error) {
    li.appendChild(el("strong", "", "Unreadable loan"));
    li.appendChild(el("p", "muted", "Saved " + formatTime(l.stored_at)));
    li.appendChild(el("p", "", typographic(l.error) + " It cannot be returned from here; the loan ends on its own."));
    return li;
  }
  const title = l.title || "Untitled loan";
  li.appendChild(el("strong", "", title));
  li.appendChild(el("p", "muted", loanStatus(l)));
  if (l.returnable && !l.expired) {
    const b = el("button", "", "Return");
    b.type = "button";
    b.setAttribute("aria-label", "Return " + title);
    b.addEventListener("click", () => { confirmReturn(li, b, l.id, title); });
    li.appendChild(b);
  }
  return li;
}

function confirmReturn(li: HTMLLIElement, button: HTMLButtonElement, id: string, title: string): void {
  const box = el("div", "confirm");
  const q = el("p", "", "Return " + quote(title) + " to the library? You can no longer read it.");
  q.id = "confirm-" + id;
  q.tabIndex = -1;
  box.setAttribute("role", "group");
  box.setAttribute("aria-labelledby", q.id);
  const yes = el("button", "primary", "Return"), no = el("button", "", "Cancel");
  yes.type = no.type = "button";
  box.appendChild(q);
  box.appendChild(yes);
  box.appendChild(no);
  button.hidden = true;
  li.appendChild(box);
  function cancel(): void {
    li.removeChild(box);
    button.hidden = false;
    button.focus();
  }
  no.addEventListener("click", cancel);
  box.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && yes.parentNode) {
      e.preventDefault();
      cancel();
    }
  });
  yes.addEventListener("click", () => {
    box.removeChild(yes);
    box.removeChild(no);
    q.textContent = "Returning " + quote(title) + "\u2026";
    q.focus();
    note("", false);
    returnLoan(id, title);
  });
  yes.focus();
}

function returnLoan(id: string, title: string): void {
  const done = (text: string, bad: boolean): void => {
    note(text, bad);
    $("loans-h").focus();
    loadLoans();
  };
  fetch("/loans/" + encodeURIComponent(id) + "/return", { method: "POST", headers: headers(false), cache: "no-store" }).then(readAnswer).then((a) => {
    if (accessProblem(a)) return;
    if (a.status === 200) {
      if (cardLoan === id) {
        $("book-loan").textContent = "You returned this loan to the library.";
        cardLoan = null;
      }
      done("Returned " + quote(title) + " to the library.", false);
    } else done(explainReturn(a, quote(title)), true);
  }, () => { done("The connection to the service was lost: " + quote(title) + " may not have been returned. The list shows what the service has now.", true); });
}

function convertFile(file: File | null | undefined): void {
  if (!file) return;
  const tooBig = tooBigForAcsm(file.name, file.size);
  if (tooBig) {
    failText(tooBig, null, true);
    return;
  }
  const unreadable = (): void => { failText(unreadableFile(file.name), null, true); };
  // A book, an archive or a web page is said to be one before anything is sent.
  file.slice(0, 512).arrayBuffer().then((head) => {
    const kind = otherFileKind(latin1(new Uint8Array(head)));
    if (kind) {
      failText(notAnAcsm(file.name, kind), null, true);
      return;
    }
    file.text().then((text) => {
      convert({ acsm_content: text, filename: file.name });
    }, unreadable);
  }, unreadable);
}

// A field's hint: an error in the error colour, marked on the field for screen readers.
function hint(id: string, field: string, text: string): void {
  $(id).textContent = text;
  $(id).className = text ? "bad" : "muted";
  if (text) $(field).setAttribute("aria-invalid", "true");
  else $(field).removeAttribute("aria-invalid");
}

const fileInput = $<HTMLInputElement>("file");
fileInput.addEventListener("change", () => {
  convertFile(fileInput.files && fileInput.files[0]);
  fileInput.value = "";
});
$("url-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const url = $<HTMLInputElement>("acsm-url").value.trim();
  if (!isHttpsUrl(url)) {
    hint("url-hint", "acsm-url", "Paste an address starting with https://");
    $("acsm-url").focus();
    return;
  }
  hint("url-hint", "acsm-url", "");
  convert({ acsm_url: url });
});
const drop = $("drop");
(["dragenter", "dragover"] as const).forEach((t) => { drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }); });
(["dragleave", "drop"] as const).forEach((t) => { drop.addEventListener(t, () => { drop.classList.remove("over"); }); });
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  convertFile(e.dataTransfer && e.dataTransfer.files[0]);
});
$("again").addEventListener("click", () => { show("choose", false); $("file").focus(); });
$("kindle").addEventListener("click", () => { if (cardKey) sendToKindle(cardKey, $<HTMLButtonElement>("kindle"), $("kindle-note")); });
$("retry").addEventListener("click", () => { if (again) again(); });
$("choose-again").addEventListener("click", () => { show("choose", false); $("file").focus(); });
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const link = $<HTMLInputElement>("link");
  const t = tokenFromLink(link.value.trim());
  if (!t) {
    hint("link-hint", "link", "That is not an access link: it ends with #token=\u2026");
    link.focus();
    return;
  }
  hint("link-hint", "link", "");
  link.value = "";
  setToken(t);
  probe();
});
$("forget").addEventListener("click", () => { setToken(""); needToken(""); });

renderRecent();
probe();
