import { createHash } from "node:crypto";

/**
 * The web page the function serves at `GET /` to a browser (a phone, mostly): one self-contained
 * document, inline CSS and JS, no framework and no request to any other origin. It holds no secret,
 * so it needs no token; everything it does afterwards (health, convert, list and return loans) sends
 * the token the access link gave it (`…/#token=…`: a fragment never reaches any server).
 *
 * Kept as TypeScript constants rather than an .html file so that every way the handler runs — the
 * esbuild bundle in the image, tsx for `knock serve`, vitest — loads it the same way. The script and
 * the style are raw strings (no `${}` and no backticks inside), so what is hashed for the CSP is
 * byte for byte what the browser sees.
 */

const STYLE = String.raw`
:root { color-scheme: light dark; --bg: #fbfaf7; --fg: #1d1d1f; --muted: #5b5b62; --card: #ffffff; --line: #d6d3cc;
  --accent: #0b5cad; --accent-fg: #ffffff; --bad: #a3161a; --bad-bg: #fdeceb; --focus: #f0a000; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #141416; --fg: #ecebe8; --muted: #a9a8ad; --card: #1f1f23; --line: #3a3a40;
    --accent: #6cb0ff; --accent-fg: #0c1522; --bad: #ff9c95; --bad-bg: #3a1816; --focus: #ffc247; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 34rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
p { margin: .5rem 0; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 1rem; margin: 0 0 1rem; }
[hidden] { display: none !important; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
input[type=url], input[type=file] { width: 100%; max-width: 100%; font: inherit; padding: .6rem; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); color: var(--fg); }
button, .button { display: inline-block; font: inherit; font-weight: 600; padding: .65rem 1.1rem; margin: .75rem .5rem 0 0; border-radius: 8px;
  border: 1px solid var(--accent); background: transparent; color: var(--accent); cursor: pointer; text-decoration: none; }
button.primary, .button.primary { background: var(--accent); color: var(--accent-fg); }
.big { display: block; width: 100%; text-align: center; font-size: 1.3rem; padding: 1rem; margin: 1rem 0 .5rem; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
h2[tabindex]:focus { outline: none; }
.drop { border: 2px dashed var(--line); border-radius: 10px; padding: 1rem; margin-top: .5rem; text-align: center; color: var(--muted); }
.drop.over { border-color: var(--accent); color: var(--fg); }
.muted { color: var(--muted); font-size: .95rem; }
.or { text-align: center; color: var(--muted); margin: .75rem 0 0; }
a { color: var(--accent); }
code { font-size: .95em; overflow-wrap: anywhere; }
#failed { border-color: var(--bad); background: var(--bad-bg); }
#failed h2 { color: var(--bad); }
#progress { font-size: 1.3rem; font-variant-numeric: tabular-nums; }
ul { padding-left: 1.2rem; margin: .25rem 0; }
li { margin: .4rem 0; overflow-wrap: anywhere; }
.bad { color: var(--bad); font-weight: 600; }
#loan-list { list-style: none; padding: 0; }
#loan-list li { border-top: 1px solid var(--line); padding-top: .5rem; }
#loan-list strong { display: block; }
#loan-list p { margin: .1rem 0; }
.confirm { border-left: 3px solid var(--accent); padding-left: .75rem; margin-top: .5rem; }
#loan-note:empty { margin: 0; }
`;

const SCRIPT = String.raw`
(function () {
  "use strict";
  var TOKEN_KEY = "knock.token";
  var RECENT_KEY = "knock.recent";
  var SECTIONS = ["need-token", "iam", "choose", "working", "done", "failed"];
  var timer = null;
  var view = "", loansShown = false, loansSeq = 0;
  // The loan the result card speaks of, so that returning it updates the card too.
  var cardLoan = null;

  function $(id) { return document.getElementById(id); }
  function store() { try { return window.localStorage; } catch (e) { return null; } }
  function getToken() { var s = store(); return (s && s.getItem(TOKEN_KEY)) || ""; }
  function setToken(t) { var s = store(); if (s) { if (t) s.setItem(TOKEN_KEY, t); else s.removeItem(TOKEN_KEY); } }

  function show(id, focus) {
    SECTIONS.forEach(function (s) { $(s).hidden = s !== id; });
    $("forget").hidden = !getToken();
    view = id;
    syncLoans();
    if (focus) { var h = $(id).querySelector("h2"); if (h) h.focus(); }
  }

  // The access link carries the token in its fragment (never sent to a server). Keep it in this
  // browser's storage and take it out of the address bar, the history and any bookmark.
  function tokenFromFragment(hash) {
    var m = /(?:^#|&)token=([^&]*)/.exec(hash || "");
    if (!m) return "";
    try { return decodeURIComponent(m[1]); } catch (e) { return ""; }
  }
  function adoptLink(text) {
    var i = text.indexOf("#");
    return i < 0 ? "" : tokenFromFragment(text.slice(i));
  }
  function takeFragment() {
    if (!window.location.hash) return;
    var t = tokenFromFragment(window.location.hash);
    if (t) setToken(t);
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  takeFragment();
  // Opening a new access link in a tab already showing the page changes only the fragment: the page
  // is not loaded again, so take the token here too.
  window.addEventListener("hashchange", function () { takeFragment(); probe(); });

  function headers(json) {
    var h = { "accept": "application/json" };
    if (json) h["content-type"] = "application/json";
    var t = getToken();
    if (t) h["authorization"] = "Bearer " + t;
    return h;
  }

  function readAnswer(res) {
    return res.text().then(function (text) {
      var body = null;
      try { body = JSON.parse(text); } catch (e) { body = null; }
      return { status: res.status, body: body || {} };
    });
  }

  function needToken(message) {
    $("token-why").textContent = message || "";
    $("token-why").hidden = !message;
    show("need-token", true);
  }

  // 401: no token or a wrong one; 403 without our error shape: AWS refused an unsigned request
  // (function_url_auth = AWS_IAM), which no browser can sign.
  function accessProblem(a) {
    if (a.status === 401) { needToken(getToken() ? "The saved access link is not valid any more: the service refused its token (it may have been replaced by a new one)." : ""); return true; }
    if (a.status === 403 && !a.body.error_type) { show("iam", true); return true; }
    return false;
  }

  function probe() {
    fetch("/", { headers: headers(false), cache: "no-store" }).then(readAnswer).then(function (a) {
      if (accessProblem(a)) return;
      if (a.status === 200 && a.body.status === "ok") { show("choose", false); loadLoans(); return; }
      fail(a, probe, false);
    }, function () { failText("Could not reach the service. Check your connection, then try again.", probe); });
  }

  function formatBytes(n) {
    if (n < 1000) return n + " bytes";
    if (n < 1e6) return Math.round(n / 1000) + " KB";
    return (n / 1e6).toFixed(1) + " MB";
  }
  function formatDate(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
  }
  function formatTime(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  // What a file that is not an ACSM is, from its first bytes: the signatures the service checks
  // (lambda/src/acsm.ts, otherFileKind): %PDF-, a zip (an EPUB's first entry is its mimetype), HTML.
  function otherFileKind(start) {
    var t = start.replace(/^\uFEFF/, "").replace(/^\s+/, "");
    if (t.indexOf("%PDF-") === 0) return "PDF";
    if (t.indexOf("PK\u0003\u0004") === 0) return t.slice(0, 256).indexOf("mimetypeapplication/epub+zip") >= 0 ? "EPUB" : "zip";
    var body = t.replace(/^<\?xml[^>]*\?>\s*/i, "");
    if (/^<!doctype\s+html[\s>]/i.test(body) || /^<html[\s>]/i.test(body)) return "HTML";
    return "";
  }
  var OTHER_FILE = { PDF: "a PDF", EPUB: "an EPUB book", zip: "a zip archive", HTML: "a web page (the download may have saved the shop\u2019s page instead of the file)" };
  function notAnAcsm(name, kind) {
    return (name ? quote(name) + " is " : "This is ") + OTHER_FILE[kind] + ", not an ACSM file. Choose the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.";
  }

  // Plain words for the service's error answers (docs/api.md, "Errors").
  function explain(a) {
    var b = a.body, type = b.error_type;
    if (type === "AcsmExpired") {
      return "This ACSM expired on " + formatDate(b.expired_at) + " (" + b.expired_at + "). An ACSM works only for a limited time: download a fresh one from the shop or library, then choose that one.";
    }
    if (type === "DeviceLimitReached") {
      return "The shop or library refused: too many devices have already been used with this book or account. Retrying will not help. Ask the library (or shop) to reset your device count, or to issue the loan again, then download a new ACSM.";
    }
    if (type === "BadRequest" && OTHER_FILE[b.detected]) return notAnAcsm(a.filename, b.detected);
    if (type === "InvalidAcsmUrl") return (b.error || "That address could not be used.") + " Download the .acsm file yourself and choose the file instead.";
    // The XML parser's words ("3:8: text data outside of root node") help no one choosing a file.
    if (type === "BadRequest" && b.xml_error) return "This file is not an ACSM the service can read: it is damaged, or another kind of file. Choose the .acsm file the shop or library gave you, or download it again.";
    if (type === "BadRequest" || type === "PayloadTooLarge") return (b.error || "") + " Check that you chose the .acsm file the shop or library gave you.";
    // A host the service cannot reach: its message names it and says what to do.
    if (type === "UpstreamError" && b.unreachable_host) return b.error || "";
    if (type === "UpstreamError") return (b.error || "") + " The shop\u2019s or Adobe\u2019s server failed; try again later.";
    if (b.error) return b.error;
    if (b.Message) return "The service failed (" + b.Message + "). Try again in a moment.";
    return "The service answered HTTP " + a.status + ". Try again in a moment.";
  }

  // Whether sending the same request again can succeed: not for the request's own faults (4xx: a
  // bad or expired ACSM, a device limit, a refused type) nor for a deployment that lacks its tools or
  // settings; yes for a failed or unreachable server, a timeout, a throttled or lost connection.
  function retryable(a) {
    var type = a.body.error_type;
    if (type === "ConverterMissing" || type === "Misconfigured") return false;
    return a.status >= 500 || a.status === 429 || a.status === 0;
  }

  function stopTimer() { if (timer) { clearInterval(timer); timer = null; } }
  // The failure card. "Try again" only where a retry can help (it then runs again); "Choose another
  // file" after a conversion no retry can fix; neither when only the service's owner can fix it.
  var again = null;
  // The service's messages are ASCII ("Adobe's"); the page's own words use typographic apostrophes.
  function typographic(text) { return String(text).replace(/(\w)'(\w)/g, "$1\u2019$2"); }
  function failText(text, retry, choose) {
    stopTimer();
    again = retry || null;
    $("error-text").textContent = typographic(text);
    $("retry").hidden = !again;
    $("choose-again").hidden = !!again || !choose;
    show("failed", true);
  }
  function fail(a, retry, choose) {
    failText(explain(a) + (a.body.request_id ? " (request id " + a.body.request_id + ")" : ""), retryable(a) ? retry : null, choose);
  }

  function loadRecent() {
    var s = store(), list = [];
    try { list = JSON.parse((s && s.getItem(RECENT_KEY)) || "[]"); } catch (e) { list = []; }
    if (!Array.isArray(list)) list = [];
    var now = Date.now();
    return list.filter(function (r) { return r && r.url && Date.parse(r.expires_at) > now; });
  }
  function saveRecent(list) { var s = store(); if (s) s.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 10))); }
  function renderRecent() {
    var list = loadRecent();
    saveRecent(list);
    var ul = $("recent-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (r) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = r.url;
      a.setAttribute("download", r.filename);
      a.textContent = r.filename;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" \u2014 " + formatBytes(r.size_bytes) + ", until " + formatTime(r.expires_at)));
      ul.appendChild(li);
    });
    $("recent").hidden = list.length === 0;
  }

  function convert(body) {
    var started = Date.now();
    var sendAgain = function () { convert(body); };
    var tick = function () { $("progress").textContent = "Converting\u2026 " + Math.floor((Date.now() - started) / 1000) + " s"; };
    tick();
    show("working", false);
    stopTimer();
    timer = setInterval(tick, 1000);
    fetch("/", { method: "POST", headers: headers(true), body: JSON.stringify(body), cache: "no-store" }).then(readAnswer).then(function (a) {
      stopTimer();
      if (accessProblem(a)) return;
      var file = a.body.output_files && a.body.output_files[0];
      a.filename = body.filename;
      if (a.status !== 200 || !file) { fail(a, sendAgain, true); return; }
      var title = file.filename.replace(/\.(epub|pdf)$/i, "");
      $("book-title").textContent = title;
      $("book-meta").textContent = (/\.pdf$/i.test(file.filename) ? "PDF" : "EPUB") + ", " + formatBytes(file.size_bytes);
      var link = $("download");
      link.href = file.download_url;
      link.setAttribute("download", file.filename);
      link.setAttribute("aria-label", "Download " + file.filename);
      $("expires").textContent = "The link works until " + formatTime(file.expires_at) + ".";
      var loan = a.body.loan;
      cardLoan = loan ? loan.id : null;
      $("book-loan").textContent = loan ? loanText(loan) : "";
      $("book-loan").hidden = !loan;
      if (loan) loadLoans();
      var list = loadRecent().filter(function (r) { return r.url !== file.download_url; });
      list.unshift({ filename: file.filename, url: file.download_url, size_bytes: file.size_bytes, expires_at: file.expires_at });
      saveRecent(list);
      renderRecent();
      show("done", true);
    }, function () { failText("The connection to the service was lost. Check your connection, then try again.", sendAgain); });
  }

  // Library loans (docs/api.md, "Library loans"): listed from GET /loans, returned early with an
  // inline confirmation (window.confirm is suppressed by some mobile browsers).
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function quote(t) { return "\u201c" + t + "\u201d"; }
  function loanText(l) {
    return "This is a library loan" + (l.expires_at ? " ending on " + formatTime(l.expires_at) : "") + ". " +
      (l.returnable ? "You can return it early from \u201cMy loans\u201d below." : (l.warning || "It cannot be returned early; it ends on its own."));
  }
  function syncLoans() { $("loans").hidden = !loansShown || view === "" || view === "need-token" || view === "iam"; }
  function note(text, bad) {
    var n = $("loan-note");
    n.textContent = typographic(text);
    n.className = bad ? "bad" : "";
    if (text) loansShown = true;
    syncLoans();
  }

  function loadLoans() {
    var seq = ++loansSeq;
    fetch("/loans", { headers: headers(false), cache: "no-store" }).then(readAnswer).then(function (a) {
      if (seq !== loansSeq || accessProblem(a)) return;
      if (a.status === 200 && Array.isArray(a.body.loans)) renderLoans(a.body.loans);
      else if (a.status !== 404) note("Could not list your loans: " + explain(a), true);
    }, function () { if (seq === loansSeq) note("Could not list your loans: the service could not be reached.", true); });
  }

  function renderLoans(list) {
    var ul = $("loan-list");
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach(function (l) { ul.appendChild(loanItem(l)); });
    $("loans-empty").hidden = list.length > 0;
    loansShown = list.length > 0 || $("loan-note").textContent !== "";
    syncLoans();
  }

  function loanItem(l) {
    var li = el("li");
    if (l.error) {
      li.appendChild(el("strong", "", "Unreadable loan"));
      li.appendChild(el("p", "muted", "Saved " + formatTime(l.stored_at)));
      li.appendChild(el("p", "", typographic(l.error) + " It cannot be returned from here; the loan ends on its own."));
      return li;
    }
    var title = l.title || "Untitled loan";
    li.appendChild(el("strong", "", title));
    li.appendChild(el("p", "muted", l.expired ? "ended" + (l.expires_at ? " " + formatTime(l.expires_at) : "") : l.expires_at ? "ends " + formatTime(l.expires_at) : "end date unknown"));
    if (l.returnable && !l.expired) {
      var b = el("button", "", "Return");
      b.type = "button";
      b.setAttribute("aria-label", "Return " + title);
      b.addEventListener("click", function () { confirmReturn(li, b, l.id, title); });
      li.appendChild(b);
    }
    return li;
  }

  function confirmReturn(li, button, id, title) {
    var box = el("div", "confirm");
    var q = el("p", "", "Return " + quote(title) + " to the library? You can no longer read it.");
    q.id = "confirm-" + id;
    q.tabIndex = -1;
    box.setAttribute("role", "group");
    box.setAttribute("aria-labelledby", q.id);
    var yes = el("button", "primary", "Return"), no = el("button", "", "Cancel");
    yes.type = no.type = "button";
    box.appendChild(q);
    box.appendChild(yes);
    box.appendChild(no);
    button.hidden = true;
    li.appendChild(box);
    function cancel() { li.removeChild(box); button.hidden = false; button.focus(); }
    no.addEventListener("click", cancel);
    box.addEventListener("keydown", function (e) { if (e.key === "Escape" && yes.parentNode) { e.preventDefault(); cancel(); } });
    yes.addEventListener("click", function () {
      box.removeChild(yes);
      box.removeChild(no);
      q.textContent = "Returning " + quote(title) + "\u2026";
      q.focus();
      note("", false);
      returnLoan(id, title);
    });
    yes.focus();
  }

  function returnLoan(id, title) {
    var done = function (text, bad) { note(text, bad); $("loans-h").focus(); loadLoans(); };
    fetch("/loans/" + encodeURIComponent(id) + "/return", { method: "POST", headers: headers(false), cache: "no-store" }).then(readAnswer).then(function (a) {
      if (accessProblem(a)) return;
      if (a.status === 200) {
        if (cardLoan === id) { $("book-loan").textContent = "You returned this loan to the library."; cardLoan = null; }
        done("Returned " + quote(title) + " to the library.", false);
      }
      else done(explainReturn(a, quote(title)), true);
    }, function () { done("The connection to the service was lost: " + quote(title) + " may not have been returned. The list shows what the service has now.", true); });
  }

  // Plain words for a return's error answers (docs/api.md, "Library loans").
  function explainReturn(a, t) {
    var b = a.body, type = b.error_type;
    var rid = a.status >= 500 && b.request_id ? " (request id " + b.request_id + ")" : "";
    if (type === "LoanReturnRefused") return "The library refused to take back " + t + (b.adept_error ? ": it answered " + b.adept_error : "") + ". It may already be returned or ended. It stays in this list; once the library no longer shows it, remove it with npx knock return --forget " + b.loan_id + ".";
    if (type === "LoanExpired") return t + " has already ended: the library has taken it back, there is nothing to return.";
    if (type === "NoSuchLoan") return t + " is no longer stored: it was already returned or removed.";
    if (type === "ReturnInProgress") return t + " is being returned by another request right now; look at this list again in a minute.";
    if (type === "InvalidLoanToken") return "The saved loan of " + t + " cannot be read, so it cannot be returned; it ends on its own.";
    if (type === "UpstreamError" && b.unreachable_host) return b.error + " " + t + " was not returned." + rid;
    if (type === "UpstreamError") return "The library\u2019s server failed or could not be reached; " + t + " was not returned. Try again later." + rid;
    if (type === "ConversionTimeout") return "The library\u2019s server took too long to answer; " + t + " was not returned. Try again later." + rid;
    return explain(a) + rid;
  }

  function convertFile(file) {
    if (!file) return;
    if (file.size > 262144) { failText(quote(file.name) + " is " + formatBytes(file.size) + ": an .acsm file is a few KB. Choose the .acsm file the shop or library gave you.", null, true); return; }
    var unreadable = function () { failText("Could not read " + quote(file.name) + ". Choose it again, or another file.", null, true); };
    // A book, an archive or a web page is said to be one before anything is sent.
    file.slice(0, 512).arrayBuffer().then(function (head) {
      var kind = otherFileKind(String.fromCharCode.apply(null, Array.prototype.slice.call(new Uint8Array(head))));
      if (kind) { failText(notAnAcsm(file.name, kind), null, true); return; }
      file.text().then(function (text) {
        convert({ acsm_content: text, filename: file.name });
      }, unreadable);
    }, unreadable);
  }

  // A field's hint: an error in the error colour, marked on the field for screen readers.
  function hint(id, field, text) {
    $(id).textContent = text;
    $(id).className = text ? "bad" : "muted";
    if (text) $(field).setAttribute("aria-invalid", "true");
    else $(field).removeAttribute("aria-invalid");
  }

  $("file").addEventListener("change", function () { convertFile(this.files && this.files[0]); this.value = ""; });
  $("url-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var url = $("acsm-url").value.trim();
    if (!/^https:\/\//i.test(url)) { hint("url-hint", "acsm-url", "Paste an address starting with https://"); $("acsm-url").focus(); return; }
    hint("url-hint", "acsm-url", "");
    convert({ acsm_url: url });
  });
  var drop = $("drop");
  ["dragenter", "dragover"].forEach(function (t) { drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); }); });
  ["dragleave", "drop"].forEach(function (t) { drop.addEventListener(t, function () { drop.classList.remove("over"); }); });
  drop.addEventListener("drop", function (e) { e.preventDefault(); convertFile(e.dataTransfer && e.dataTransfer.files[0]); });
  $("again").addEventListener("click", function () { show("choose", false); $("file").focus(); });
  $("retry").addEventListener("click", function () { if (again) again(); });
  $("choose-again").addEventListener("click", function () { show("choose", false); $("file").focus(); });
  $("token-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var t = adoptLink($("link").value.trim());
    if (!t) { hint("link-hint", "link", "That is not an access link: it ends with #token=\u2026"); $("link").focus(); return; }
    hint("link-hint", "link", "");
    $("link").value = "";
    setToken(t);
    probe();
  });
  $("forget").addEventListener("click", function () { setToken(""); needToken(""); });

  renderRecent();
  probe();
})();
`;

const MARKUP_HEAD = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>knock \u2014 ACSM to EPUB/PDF</title>
<link rel="icon" href="data:,">
<style>`;

const MARKUP_BODY = `</style>
</head>
<body>
<main>
<h1>ACSM to EPUB/PDF</h1>
<section id="need-token" hidden aria-labelledby="need-token-h">
  <h2 id="need-token-h" tabindex="-1">Open your access link</h2>
  <p id="token-why" hidden></p>
  <p>This service is private: it works only from its access link. On the computer you deployed it from, run <code>npx knock open</code> and scan the QR code with this phone, or open the link it prints. For <code>knock serve</code>, open the link it printed when it started, or the one <code>npx knock open --url</code> prints with its address and <code>--token</code>.</p>
  <form id="token-form" novalidate>
    <label for="link">Or paste the access link</label>
    <input id="link" type="url" inputmode="url" autocomplete="off" autocapitalize="off" spellcheck="false" placeholder="https://\u2026/#token=\u2026" aria-describedby="link-hint">
    <p id="link-hint" class="muted" aria-live="polite"></p>
    <button type="submit" class="primary">Use this link</button>
  </form>
</section>
<section id="iam" hidden aria-labelledby="iam-h">
  <h2 id="iam-h" tabindex="-1">This service only takes signed requests</h2>
  <p>It is deployed with <code>function_url_auth = AWS_IAM</code>: every request must be signed with AWS credentials, which a browser cannot do. Convert with <code>npx knock convert</code> on a computer, or redeploy with <code>pulumi config set function_url_auth TOKEN</code> to use this page.</p>
</section>
<section id="choose" hidden aria-labelledby="choose-h">
  <h2 id="choose-h" tabindex="-1">Choose the ACSM file</h2>
  <label for="file">ACSM file from the shop or library</label>
  <input id="file" type="file" accept=".acsm,application/vnd.adobe.adept+xml">
  <p id="drop" class="drop">or drop the file here</p>
  <p class="or">or</p>
  <form id="url-form" novalidate>
    <label for="acsm-url">Paste the ACSM\u2019s https address</label>
    <input id="acsm-url" type="url" inputmode="url" autocomplete="off" autocapitalize="off" spellcheck="false" placeholder="https://\u2026" aria-describedby="url-hint">
    <p id="url-hint" class="muted" aria-live="polite"></p>
    <button type="submit" class="primary">Convert</button>
  </form>
</section>
<section id="working" hidden aria-labelledby="working-h">
  <h2 id="working-h" tabindex="-1">Converting your book</h2>
  <p id="progress" role="status" aria-live="polite">Converting\u2026</p>
  <p class="muted">This usually takes under a minute. Keep this page open.</p>
</section>
<section id="done" hidden aria-labelledby="book-title">
  <h2 id="book-title" tabindex="-1"></h2>
  <p id="book-meta"></p>
  <a id="download" class="button primary big" href="#" download>Download</a>
  <p id="expires" class="muted"></p>
  <p id="book-loan" hidden></p>
  <button id="again" type="button">Convert another</button>
</section>
<section id="failed" hidden role="alert" aria-labelledby="failed-h">
  <h2 id="failed-h" tabindex="-1">That did not work</h2>
  <p id="error-text"></p>
  <button id="retry" type="button" hidden>Try again</button>
  <button id="choose-again" type="button" hidden>Choose another file</button>
</section>
<section id="loans" hidden aria-labelledby="loans-h">
  <h2 id="loans-h" tabindex="-1">My loans</h2>
  <p id="loan-note" aria-live="polite"></p>
  <ul id="loan-list"></ul>
  <p id="loans-empty" class="muted" hidden>No library loans.</p>
  <p class="muted">A loan ends on its own; returning it early gives the book back to the library.</p>
</section>
<section id="recent" hidden aria-labelledby="recent-h">
  <h2 id="recent-h">Recent conversions in this browser</h2>
  <ul id="recent-list"></ul>
  <p class="muted">Links stop working when they expire; they are then removed from this list.</p>
</section>
<button id="forget" type="button" hidden>Forget the access link on this browser</button>
</main>
<script>`;

const MARKUP_END = `</script>
</body>
</html>
`;

/** The page, exactly as served. */
export const PAGE_HTML = MARKUP_HEAD + STYLE + MARKUP_BODY + SCRIPT + MARKUP_END;

function sha256Source(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/**
 * The page's Content-Security-Policy: nothing but its own hashed inline script and style, requests
 * only to its own origin (the service: health, convert, loans, knock serve's /_downloads/), no framing, no
 * `<base>`, no form posts. The Download button is a navigation to the presigned link, which
 * `connect-src` does not govern.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256Source(SCRIPT)}`,
  `style-src ${sha256Source(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** Headers of the page's answer. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": PAGE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The same URL answers JSON to API clients: caches must keep the two apart.
  vary: "Accept",
  "cache-control": "no-cache",
});

/** The inline script and style, for tests that check the CSP hashes against them. */
export const PAGE_PARTS = Object.freeze({ script: SCRIPT, style: STYLE });
