// The page's pure logic (lambda/page/helpers.ts), in Node: the token from an access link, a file's
// kind from its first bytes, and every sentence the page builds from the service's answers. The same
// functions run in the browser (test/page/browser.test.ts and wording.test.ts drive them there).
import { describe, expect, it } from "vitest";
import {
  ACSM_MAX_BYTES, bookMeta, bookTitle, explain, explainReturn, failureButtons, failureText, formatBytes, formatDate, formatTime, isHttpsUrl, latin1,
  linkExpiry, liveRecent, loansHidden, loanStatus, loanText, notAnAcsm, otherFileKind, OTHER_FILE, progressText, quote, RECENT_MAX, recentDetails,
  recentToSave, retryable, tokenFromFragment, tokenFromLink, tooBigForAcsm, typographic, unreadableFile, withRecent, type Answer, type Recent, type ServiceBody,
} from "../../lambda/page/helpers";

const answer = (status: number, body: ServiceBody, filename?: string): Answer => ({ status, body, filename });
const CHOOSE = "Choose the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.";

describe("the token from an access link", () => {
  it.each([
    ["#token=abc", "abc"],
    ["#token=s3cr3t-T0ken_for-the-page-tests-0123456789ab", "s3cr3t-T0ken_for-the-page-tests-0123456789ab"],
    ["#token=a%2Fb%20c", "a/b c"],
    ["#x=1&token=t&y=2", "t"],
    ["#token=", ""],
    ["#tokens=x", ""],
    ["#xtoken=x", ""],
    ["#x=token=y", ""],
    ["?token=x", ""],
    ["#token=%E0%A4%A", ""],
    ["", ""],
    [null, ""],
    [undefined, ""],
  ])("reads %j as %j", (hash, token) => {
    expect(tokenFromFragment(hash)).toBe(token);
  });

  it("takes it from a pasted link's fragment only", () => {
    expect(tokenFromLink("https://abc.lambda-url.eu-west-1.on.aws/#token=T0k")).toBe("T0k");
    expect(tokenFromLink("http://127.0.0.1:8080/#token=a%26b")).toBe("a&b");
    expect(tokenFromLink("https://abc.lambda-url.eu-west-1.on.aws/?token=T0k")).toBe("");
    expect(tokenFromLink("https://abc.lambda-url.eu-west-1.on.aws/")).toBe("");
    expect(tokenFromLink("T0k")).toBe("");
    expect(tokenFromLink("#token=T0k")).toBe("T0k");
  });

  it("takes an ACSM's address only when it is https", () => {
    expect(isHttpsUrl("https://shop.example.test/URLLink.acsm")).toBe(true);
    expect(isHttpsUrl("HTTPS://shop.example.test/a")).toBe(true);
    expect(isHttpsUrl("http://shop.example.test/URLLink.acsm")).toBe(false);
    expect(isHttpsUrl(" https://shop.example.test/")).toBe(false);
    expect(isHttpsUrl("https:/shop.example.test/")).toBe(false);
    expect(isHttpsUrl("")).toBe(false);
  });
});

describe("sizes, dates and quotes", () => {
  it.each([
    [0, "0 bytes"], [999, "999 bytes"], [1000, "1 KB"], [1499, "1 KB"], [1500, "2 KB"], [65536, "66 KB"], [262144, "262 KB"],
    [999_499, "999 KB"], [1_000_000, "1.0 MB"], [1_250_000, "1.3 MB"], [42_000_000, "42.0 MB"],
  ])("writes %d bytes as %j", (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it("writes dates in the browser's words and leaves what is not a date as it came", () => {
    expect(formatDate("2020-01-01T00:00:00+00:00", "en-US", "UTC")).toBe("January 1, 2020");
    expect(formatDate("2020-01-01T00:00:00+00:00", "en-GB", "UTC")).toBe("1 January 2020");
    expect(formatDate("2020-01-01T00:30:00+01:00", "en-US", "UTC")).toBe("December 31, 2019");
    expect(formatTime("2099-12-10T10:00:00+00:00", "en-US", "UTC").replace("\u202f", " ")).toBe("Dec 10, 2099, 10:00 AM");
    expect(formatTime("2020-01-01T00:00:00+00:00", "en-US", "UTC").replace("\u202f", " ")).toBe("Jan 1, 2020, 12:00 AM");
    expect(formatDate("soon")).toBe("soon");
    expect(formatTime("soon")).toBe("soon");
    expect(formatDate(undefined)).toBe("undefined");
    expect(formatTime(undefined)).toBe("undefined");
    // Without a locale or a zone: the runtime's own, as the browser's.
    const d = new Date("2099-12-10T10:00:00+00:00");
    expect(formatTime("2099-12-10T10:00:00+00:00")).toBe(d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
    expect(formatDate("2099-12-10T10:00:00+00:00")).toBe(d.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" }));
  });

  it("quotes typographically and turns the service's ASCII apostrophes into typographic ones", () => {
    expect(quote("Card Loan")).toBe("\u201cCard Loan\u201d");
    expect(typographic("Could not talk to the distributor's server: Adobe's")).toBe("Could not talk to the distributor\u2019s server: Adobe\u2019s");
    expect(typographic("'quoted' and it's")).toBe("'quoted' and it\u2019s");
    expect(typographic(undefined)).toBe("undefined");
  });
});

describe("a file that is not an ACSM", () => {
  const zip = (entry: string): string => latin1(new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...new Array(26).fill(0), ...Buffer.from(entry)]));

  it("reads bytes one character each", () => {
    expect(latin1(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0xe2, 0xff]))).toBe("PK\u0003\u0004\u00e2\u00ff");
    expect(latin1(new Uint8Array(0))).toBe("");
  });

  it.each([
    ["%PDF-1.7\n%\u00e2\u00e3", "PDF"],
    ["\uFEFF \n\t%PDF-1.4", "PDF"],
    ["PDF-1.7 %PDF-", ""],
    ["<!DOCTYPE html>\n<html><body>Sign in</body></html>", "HTML"],
    ["<!doctype html><html>", "HTML"],
    ["  <html lang=\"en\">", "HTML"],
    ["<html>", "HTML"],
    ["<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">", "HTML"],
    ["<htmlx>", ""],
    ["<!doctype htmlx>", ""],
    ["<?xml version=\"1.0\"?>\n<fulfillmentToken fulfillmentType=\"buy\">", ""],
    ["Order 1234\nThanks for your purchase!\n", ""],
    ["", ""],
  ])("takes %j for %j", (start, kind) => {
    expect(otherFileKind(start)).toBe(kind);
  });

  it("tells an EPUB from another zip by its first entry, the mimetype", () => {
    expect(otherFileKind(zip("mimetypeapplication/epub+zip"))).toBe("EPUB");
    expect(otherFileKind(zip("word/document.xml"))).toBe("zip");
    expect(otherFileKind("PK\u0005\u0006")).toBe("");
    // Only the first 256 characters are looked at.
    expect(otherFileKind(zip(" ".repeat(230) + "mimetypeapplication/epub+zip"))).toBe("zip");
  });

  it("says what the file is instead, with or without its name", () => {
    expect(notAnAcsm("book.pdf", "PDF")).toBe(`\u201cbook.pdf\u201d is a PDF, not an ACSM file. ${CHOOSE}`);
    expect(notAnAcsm("book.epub", "EPUB")).toBe(`\u201cbook.epub\u201d is an EPUB book, not an ACSM file. ${CHOOSE}`);
    expect(notAnAcsm(undefined, "zip")).toBe(`This is a zip archive, not an ACSM file. ${CHOOSE}`);
    expect(notAnAcsm("", "HTML")).toBe(`This is a web page (the download may have saved the shop\u2019s page instead of the file), not an ACSM file. ${CHOOSE}`);
    expect(Object.keys(OTHER_FILE).sort()).toEqual(["EPUB", "HTML", "PDF", "zip"]);
  });

  it("refuses a file too big to be an ACSM, and says one could not be read", () => {
    expect(ACSM_MAX_BYTES).toBe(262144);
    expect(tooBigForAcsm("book.epub", 262145)).toBe("\u201cbook.epub\u201d is 262 KB: an .acsm file is a few KB. Choose the .acsm file the shop or library gave you.");
    expect(tooBigForAcsm("book.epub", 5_300_000)).toBe("\u201cbook.epub\u201d is 5.3 MB: an .acsm file is a few KB. Choose the .acsm file the shop or library gave you.");
    expect(tooBigForAcsm("big.acsm", 262144)).toBe("");
    expect(tooBigForAcsm("small.acsm", 3000)).toBe("");
    expect(unreadableFile("book.acsm")).toBe("Could not read \u201cbook.acsm\u201d. Choose it again, or another file.");
  });
});

describe("the service's error answers in plain words", () => {
  it("names the date an ACSM expired", () => {
    const iso = "2020-01-01T00:00:00+00:00";
    expect(explain(answer(410, { error_type: "AcsmExpired", expired_at: iso, error: "The ACSM expired." }))).toBe(
      `This ACSM expired on ${formatDate(iso)} (${iso}). An ACSM works only for a limited time: download a fresh one from the shop or library, then choose that one.`,
    );
  });

  it.each<[string, Answer, string]>([
    ["a device limit", answer(409, { error_type: "DeviceLimitReached", error: "E_GOOGLE_DEVICE_LIMIT_REACHED" }),
      "The shop or library refused: too many devices have already been used with this book or account. Retrying will not help. Ask the library (or shop) to reset your device count, or to issue the loan again, then download a new ACSM."],
    ["a file the service took for a PDF", answer(400, { error_type: "BadRequest", detected: "PDF", error: "This is a PDF." }, "book.pdf"), `\u201cbook.pdf\u201d is a PDF, not an ACSM file. ${CHOOSE}`],
    ["a pasted address's PDF (no file name)", answer(400, { error_type: "BadRequest", detected: "PDF", error: "This is a PDF." }), `This is a PDF, not an ACSM file. ${CHOOSE}`],
    ["a kind the page does not know", answer(400, { error_type: "BadRequest", detected: "tar", error: "The ACSM is not XML." }), "The ACSM is not XML. Check that you chose the .acsm file the shop or library gave you."],
    ["a refused address", answer(400, { error_type: "InvalidAcsmUrl", error: "acsm_url must be https." }), "acsm_url must be https. Download the .acsm file yourself and choose the file instead."],
    ["a refused address without words", answer(400, { error_type: "InvalidAcsmUrl" }), "That address could not be used. Download the .acsm file yourself and choose the file instead."],
    ["the XML parser's refusal", answer(400, { error_type: "BadRequest", error: "The ACSM is not well-formed XML (3:8: text data outside of root node).", xml_error: "3:8: text data outside of root node" }),
      "This file is not an ACSM the service can read: it is damaged, or another kind of file. Choose the .acsm file the shop or library gave you, or download it again."],
    ["another bad request", answer(400, { error_type: "BadRequest", error: "The ACSM has no operatorURL." }), "The ACSM has no operatorURL. Check that you chose the .acsm file the shop or library gave you."],
    ["a bad request without words", answer(400, { error_type: "BadRequest" }), " Check that you chose the .acsm file the shop or library gave you."],
    ["a file too large", answer(413, { error_type: "PayloadTooLarge", error: "The request body is larger than 262144 bytes." }), "The request body is larger than 262144 bytes. Check that you chose the .acsm file the shop or library gave you."],
    ["an unreachable host", answer(502, { error_type: "UpstreamError", error: "This machine has no route to adeactivate.adobe.com.", unreachable_host: "adeactivate.adobe.com" }), "This machine has no route to adeactivate.adobe.com."],
    ["a failed server", answer(502, { error_type: "UpstreamError", error: "Could not talk to the distributor's server: HTTP Error code 503." }),
      "Could not talk to the distributor's server: HTTP Error code 503. The shop\u2019s or Adobe\u2019s server failed; try again later."],
    ["any other error with words", answer(504, { error_type: "ConversionTimeout", error: "The conversion took too long." }), "The conversion took too long."],
    ["AWS's own error", answer(403, { Message: "Forbidden" }), "The service failed (Forbidden). Try again in a moment."],
    ["an answer without a body", answer(502, {}), "The service answered HTTP 502. Try again in a moment."],
  ])("explains %s", (_what, a, text) => {
    expect(explain(a)).toBe(text);
  });

  it("adds the request id when there is one", () => {
    expect(failureText(answer(502, { error_type: "UpstreamError", error: "Boom.", unreachable_host: "h", request_id: "0b8e5c1e-3f0e-4c62-9d2a-6f3b1d2c4e5f" }))).toBe(
      "Boom. (request id 0b8e5c1e-3f0e-4c62-9d2a-6f3b1d2c4e5f)",
    );
    expect(failureText(answer(502, { error_type: "UpstreamError", error: "Boom.", unreachable_host: "h" }))).toBe("Boom.");
  });
});

describe("when \"Try again\" shows", () => {
  it.each([
    [500, undefined, true], [502, "UpstreamError", true], [504, "ConversionTimeout", true], [503, undefined, true], [429, undefined, true], [0, undefined, true],
    [500, "ConverterMissing", false], [500, "Misconfigured", false], [429, "Misconfigured", false],
    [400, "BadRequest", false], [401, undefined, false], [403, undefined, false], [404, "NotFound", false], [409, "DeviceLimitReached", false],
    [410, "AcsmExpired", false], [413, "PayloadTooLarge", false], [200, undefined, false],
  ])("after HTTP %d %s: %s", (status, type, retry) => {
    expect(retryable(answer(status, type ? { error_type: type } : {}))).toBe(retry);
  });

  it("offers \"Try again\" where a retry can help, else \"Choose another file\" after a conversion, else neither", () => {
    expect(failureButtons(true, true)).toEqual({ tryAgain: true, chooseAnother: false });
    expect(failureButtons(true, false)).toEqual({ tryAgain: true, chooseAnother: false });
    expect(failureButtons(false, true)).toEqual({ tryAgain: false, chooseAnother: true });
    expect(failureButtons(false, false)).toEqual({ tryAgain: false, chooseAnother: false });
  });
});

describe("the result card", () => {
  const file = { filename: "Les Mis\u00e9rables.epub", download_url: "https://b.s3.test/x?sig", size_bytes: 65536, expires_at: "2099-12-10T10:00:00+00:00" };

  it("counts the seconds, names the book and its format", () => {
    expect(progressText(0)).toBe("Converting\u2026 0 s");
    expect(progressText(1999)).toBe("Converting\u2026 1 s");
    expect(progressText(61_000)).toBe("Converting\u2026 61 s");
    expect(bookTitle("Les Mis\u00e9rables.epub")).toBe("Les Mis\u00e9rables");
    expect(bookTitle("Manual.PDF")).toBe("Manual");
    expect(bookTitle("notes.epub.zip")).toBe("notes.epub.zip");
    expect(bookMeta(file)).toBe("EPUB, 66 KB");
    expect(bookMeta({ ...file, filename: "Manual.PDF", size_bytes: 2_400_000 })).toBe("PDF, 2.4 MB");
    expect(linkExpiry(file)).toBe(`The link works until ${formatTime(file.expires_at)}.`);
  });

  it("speaks of the loan the conversion made", () => {
    const ends = formatTime("2099-12-10T10:00:00+00:00");
    expect(loanText({ id: "a", expires_at: "2099-12-10T10:00:00+00:00", returnable: true })).toBe(`This is a library loan ending on ${ends}. You can return it early from \u201cMy loans\u201d below.`);
    expect(loanText({ id: "a", title: null, expires_at: null, returnable: false, warning: "The loan could not be recorded, so the service cannot return it early." })).toBe(
      "This is a library loan. The loan could not be recorded, so the service cannot return it early.",
    );
    expect(loanText({ id: "a", expires_at: "2099-12-10T10:00:00+00:00", returnable: false })).toBe(`This is a library loan ending on ${ends}. It cannot be returned early; it ends on its own.`);
  });
});

describe("My loans", () => {
  it("says when each loan ends or ended", () => {
    const at = "2020-01-01T00:00:00+00:00";
    expect(loanStatus({ id: "a", expired: true, expires_at: at })).toBe(`ended ${formatTime(at)}`);
    expect(loanStatus({ id: "a", expired: true, expires_at: null })).toBe("ended");
    expect(loanStatus({ id: "a", expired: false, expires_at: at })).toBe(`ends ${formatTime(at)}`);
    expect(loanStatus({ id: "a", expires_at: null })).toBe("end date unknown");
  });

  it("stays hidden until there is something to show, and while the page asks for access", () => {
    expect(loansHidden(false, "choose")).toBe(true);
    for (const view of ["choose", "working", "done", "failed"]) expect(loansHidden(true, view)).toBe(false);
    for (const view of ["", "need-token", "iam"]) expect(loansHidden(true, view)).toBe(true);
  });

  const t = quote("Refused");
  it.each<[string, Answer, string]>([
    ["a refusal", answer(409, { error_type: "LoanReturnRefused", loan_id: "1111111111111111", adept_error: "E_ADEPT_DISTRIBUTOR_AUTH" }),
      `The library refused to take back ${t}: it answered E_ADEPT_DISTRIBUTOR_AUTH. It may already be returned or ended. It stays in this list; once the library no longer shows it, remove it with npx knock return --forget 1111111111111111.`],
    ["a refusal without an ADEPT error", answer(409, { error_type: "LoanReturnRefused", loan_id: "1111111111111111" }),
      `The library refused to take back ${t}. It may already be returned or ended. It stays in this list; once the library no longer shows it, remove it with npx knock return --forget 1111111111111111.`],
    ["a loan that ended", answer(410, { error_type: "LoanExpired" }), `${t} has already ended: the library has taken it back, there is nothing to return.`],
    ["a loan no longer stored", answer(404, { error_type: "NoSuchLoan" }), `${t} is no longer stored: it was already returned or removed.`],
    ["a return under way", answer(409, { error_type: "ReturnInProgress" }), `${t} is being returned by another request right now; look at this list again in a minute.`],
    ["an unreadable token", answer(422, { error_type: "InvalidLoanToken" }), `The saved loan of ${t} cannot be read, so it cannot be returned; it ends on its own.`],
    ["an unreachable library", answer(502, { error_type: "UpstreamError", error: "No route to acs.library.test.", unreachable_host: "acs.library.test", request_id: "r-1" }),
      `No route to acs.library.test. ${t} was not returned. (request id r-1)`],
    ["a failed library", answer(502, { error_type: "UpstreamError", error: "HTTP 503.", request_id: "r-2" }),
      `The library\u2019s server failed or could not be reached; ${t} was not returned. Try again later. (request id r-2)`],
    ["a slow library", answer(504, { error_type: "ConversionTimeout", request_id: "r-3" }), `The library\u2019s server took too long to answer; ${t} was not returned. Try again later. (request id r-3)`],
    ["anything else, with the id of a server failure", answer(500, { error_type: "Internal", error: "Something broke.", request_id: "r-4" }), "Something broke. (request id r-4)"],
    ["anything else, without the id of a request's fault", answer(400, { error_type: "BadRequest", error: "Bad id.", request_id: "r-5" }),
      "Bad id. Check that you chose the .acsm file the shop or library gave you."],
  ])("explains a return's %s", (_what, a, text) => {
    expect(explainReturn(a, t)).toBe(text);
  });
});

describe("this browser's recent conversions", () => {
  const NOW = Date.parse("2030-06-01T12:00:00Z");
  const entry = (n: number, expires_at = "2030-06-02T12:00:00Z"): Recent => ({ filename: `Book ${n}.epub`, url: `https://b.s3.test/${n}`, size_bytes: 1000 * n, expires_at });

  it("keeps only readable entries whose links still work", () => {
    expect(liveRecent(null, NOW)).toEqual([]);
    expect(liveRecent("", NOW)).toEqual([]);
    expect(liveRecent("not json", NOW)).toEqual([]);
    expect(liveRecent('{"url":"x"}', NOW)).toEqual([]);
    const saved = [entry(1), entry(2, "2030-06-01T11:59:59Z"), null, { ...entry(3), url: "" }, { filename: "x", size_bytes: 1 }, entry(4, "soon"), entry(5, "2030-06-01T12:00:00.001Z")];
    expect(liveRecent(JSON.stringify(saved), NOW)).toEqual([entry(1), entry(5, "2030-06-01T12:00:00.001Z")]);
  });

  it("puts the newest first, once, and saves the newest ten", () => {
    const list = [entry(1), entry(2), entry(3)];
    expect(withRecent(list, { ...entry(2), size_bytes: 7 })).toEqual([{ ...entry(2), size_bytes: 7 }, entry(1), entry(3)]);
    expect(withRecent([], entry(9))).toEqual([entry(9)]);
    const many = Array.from({ length: 12 }, (_, i) => entry(i + 1));
    expect(RECENT_MAX).toBe(10);
    expect(JSON.parse(recentToSave(many))).toEqual(many.slice(0, 10));
    expect(recentToSave([entry(1)])).toBe('[{"filename":"Book 1.epub","url":"https://b.s3.test/1","size_bytes":1000,"expires_at":"2030-06-02T12:00:00Z"}]');
  });

  it("says each one's size and until when its link works", () => {
    expect(recentDetails(entry(66))).toBe(` \u2014 66 KB, until ${formatTime("2030-06-02T12:00:00Z")}`);
  });
});
