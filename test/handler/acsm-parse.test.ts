// The ACSM is parsed by a conforming XML parser before any tool runs: malformed or disguised
// tokens, DOCTYPE/entity declarations and tokens lacking what libgourou needs are 400, and every
// input up to the size limit is answered in milliseconds.
import { beforeAll, describe, expect, it } from "vitest";
import { validateAcsm } from "../../lambda/src/acsm";
import { readConversion } from "../../lambda/src/request";
import { MAX_BODY_BYTES } from "../../lambda/src/contract";
import { LibgourouError, mapLibgourouError } from "../../lambda/src/libgourou";
import { AcsmExpiredError, BadRequestError } from "../../lambda/src/errors";
import { makeAcsm, urlEvent } from "./harness";

const now = new Date("2026-06-01T00:00:00Z");
const ADEPT = 'xmlns="http://ns.adobe.com/adept"';
const inner = `<operatorURL>https://acs.example.test/fulfillment</operatorURL><hmac>aG1hYw==</hmac>`;

function refuses(xml: string, message: RegExp): void {
  let caught: unknown;
  try {
    validateAcsm(xml, now);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(BadRequestError);
  expect((caught as Error).message).toMatch(message);
}

describe("validateAcsm refuses what is not an ADEPT fulfillment token", () => {
  it.each([
    ["an unclosed root", `<fulfillmentToken ${ADEPT}>${inner}`, /not well-formed/],
    ["mismatched tags", `<fulfillmentToken ${ADEPT}>${inner}</fulfillmentTokens>`, /not well-formed/],
    ["two root elements", `<fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken><x/>`, /not well-formed/],
    ["text after the root", `<fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken> trailing`, /not well-formed/],
    ["an unbound prefix", `<a:fulfillmentToken>${inner}</a:fulfillmentToken>`, /not well-formed/],
    ["an undefined entity", `<fulfillmentToken ${ADEPT}>${inner}<x>&nbsp;</x></fulfillmentToken>`, /not well-formed/],
    ["an unquoted attribute", `<fulfillmentToken ${ADEPT} auth=user>${inner}</fulfillmentToken>`, /not well-formed/],
  ])("%s (not well-formed)", (_name, xml, message) => refuses(xml, message));

  it.each([
    ["the token wrapped in another element", `<wrapper><fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken></wrapper>`],
    ["the token only inside a comment", `<html><!-- <fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken> --></html>`],
    ["the token only inside CDATA", `<html><![CDATA[<fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken>]]></html>`],
    ["a root in no namespace", `<fulfillmentToken>${inner}</fulfillmentToken>`],
    ["a root in another namespace", `<fulfillmentToken xmlns="http://example.com/x">${inner}</fulfillmentToken>`],
    ["a server <error> document", `<error xmlns="http://ns.adobe.com/adept" data="E_X"/>`],
  ])("%s", (_name, xml) => refuses(xml, /not an ACSM file/));

  it.each([
    ["a DOCTYPE", `<!DOCTYPE fulfillmentToken><fulfillmentToken ${ADEPT}>${inner}</fulfillmentToken>`],
    [
      "an entity declaration (billion laughs shape)",
      `<!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><fulfillmentToken ${ADEPT}>${inner}<x>&b;</x></fulfillmentToken>`,
    ],
    ["an external entity", `<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><fulfillmentToken ${ADEPT}>${inner}<x>&x;</x></fulfillmentToken>`],
  ])("%s", (_name, xml) => refuses(xml, /DOCTYPE/));

  it("refuses a token without <operatorURL> or <hmac>, naming the element", () => {
    refuses(makeAcsm().replace(/<operatorURL>[^<]*<\/operatorURL>/, ""), /<operatorURL>/);
    refuses(makeAcsm({ hmac: false }), /<hmac>/);
    // libgourou looks them up by their literal, unprefixed name (pugixml is not namespace-aware).
    const prefixedHmac = makeAcsm().replace(/<hmac>([^<]*)<\/hmac>/, '<a:hmac xmlns:a="http://ns.adobe.com/adept">$1</a:hmac>');
    refuses(prefixedHmac, /<hmac>/);
  });

  it.each([
    ["file:///etc/passwd"],
    ["ftp://acs.example.test/f"],
    ["gopher://127.0.0.1:25/"],
    ["dict://127.0.0.1:11211/stat"],
    ["not a url"],
    ["https://user:secret@acs.example.test/f"],
  ])("refuses operatorURL %s before any tool runs", (operatorURL) => {
    refuses(makeAcsm({ operatorURL }), /operatorURL/);
  });

  it("accepts a default-namespace token and reads title, expiration and operatorURL with entities decoded", () => {
    const info = validateAcsm(makeAcsm({ title: "Tom & Jerry", expiration: "2026-06-02T00:00:00+00:00", operatorURL: "https://acs.example.test/f?a=1&b=2" }), now);
    expect(info).toMatchObject({ expiration: "2026-06-02T00:00:00+00:00", title: "Tom & Jerry", operatorURL: "https://acs.example.test/f?a=1&b=2" });
  });

  it("still answers 410 for a past expiration and 400 for one that is not a date", () => {
    expect(() => validateAcsm(makeAcsm({ expiration: "2026-05-31T23:59:59Z" }), now)).toThrow(AcsmExpiredError);
    expect(() => validateAcsm(makeAcsm({ expiration: "soon" }), now)).toThrow(/"soon" is not a date/);
  });
});

/** CPU time (ms) this thread spends on `work`: time spent waiting for a core does not count. */
function cpuMs(work: () => void): number {
  // Older Nodes than 24 may lack process.threadCpuUsage; the process-wide figure also counts V8's helper threads.
  const read = typeof process.threadCpuUsage === "function" ? () => process.threadCpuUsage() : () => process.cpuUsage();
  const before = read();
  work();
  const after = read();
  return (after.user - before.user + after.system - before.system) / 1000;
}

/** The status the handler would answer for `xml` as a request body (400 for a refused token). */
function statusFor(xml: string): number {
  try {
    readConversion(urlEvent("POST", xml));
    validateAcsm(xml, now);
    return 200;
  } catch (err) {
    return err instanceof BadRequestError ? 400 : 500;
  }
}

// Judged by CPU time against a benign token of the same size parsed in the same run, not by the
// clock: a loaded machine delays both parses but adds nothing to the CPU time either spends, and a
// slower machine slows both alike. A parse that is not linear in its input — the regular
// expressions this parser replaced took seconds here, saxes without the depth bound over a minute
// on "deep nesting" — costs hundreds of times the benign parse, while garbage collection, a cold
// cache and the CPU clock's tick of a few milliseconds stay well inside the factor of 20 (the 50 ms
// floor matters only where the benign parse is too quick to measure).
describe("hostile inputs up to the size limit are answered in milliseconds", () => {
  const fill = (unit: string, prefix = ""): string => prefix + unit.repeat(Math.floor((MAX_BODY_BYTES - prefix.length) / unit.length));
  const token = `<fulfillmentToken ${ADEPT}>`;
  const end = `${inner}</fulfillmentToken>`;
  // A valid token padded with closed elements: the most parser work per byte a benign input asks for.
  const benign = token + "<resource>x</resource>".repeat(Math.floor((MAX_BODY_BYTES - token.length - end.length) / 22)) + end;
  let limitMs = 0;

  beforeAll(() => {
    expect(Buffer.byteLength(benign)).toBeGreaterThan(MAX_BODY_BYTES - 22);
    expect(statusFor(benign)).toBe(200); // parsed to the end and accepted
    // The median of five, after a first parse that compiles the parser.
    const runs = Array.from({ length: 6 }, () => cpuMs(() => statusFor(benign))).slice(1).sort((a, b) => a - b);
    limitMs = Math.max(50, 20 * runs[2]);
  });

  it.each([
    ["unterminated open tags", fill("<fulfillmentToken ")],
    ["unterminated prefixed tags", fill("<a:fulfillmentToken xmlns:a=")],
    ["unterminated elements inside a token", fill("<operatorURL>", token)],
    ["unterminated title elements", fill("<dc:title>", token)],
    ["many '<' ", fill("<")],
    ["an endless attribute list", fill(' a="1"', "<fulfillmentToken")],
    ["deep nesting", fill("<a>", token)],
    ["many expirations", fill("<expiration>x", token)],
    ["many distinct attributes", `<fulfillmentToken ${ADEPT}` + Array.from({ length: 20_000 }, (_, i) => ` a${i}="1"`).join("")],
    ["many namespace declarations", `<fulfillmentToken ${ADEPT}` + Array.from({ length: 12_000 }, (_, i) => ` xmlns:p${i}="u:${i}"`).join("")],
    ["many closed siblings, unclosed root", fill("<resource>x</resource>", token)],
    ["one huge unterminated comment", fill("x", `${token}<!--`)],
    ["one huge unterminated CDATA", fill("x", `${token}<![CDATA[`)],
    ["one huge attribute value", fill("x", `<fulfillmentToken ${ADEPT} a="`)],
  ])("%s", (_name, xml) => {
    expect(Buffer.byteLength(xml)).toBeLessThanOrEqual(MAX_BODY_BYTES);
    expect(statusFor(xml)).toBe(400);
    // The least of three parses: one that met a garbage collection pause is not the parse's cost.
    const spent = Math.min(...Array.from({ length: 3 }, () => cpuMs(() => statusFor(xml))));
    expect(spent).toBeLessThan(limitMs);
  });
});

describe("mapLibgourouError: the caller's input errors are 400", () => {
  it.each([
    ["0x1101", "Invalid ACSM file /tmp/x/request.acsm"],
    ["0x1102", "hmac tag not found in ACSM file"],
    ["0x1104", "OperatorURL not found in ACSM document"],
    ["0x1105", "E_ADEPT_SOMETHING"],
  ])("%s", (code, message) => {
    const mapped = mapLibgourouError(new LibgourouError("acsmdownloader", 1, code, message));
    expect(mapped.statusCode).toBe(400);
    expect(mapped.errorType).toBe("BadRequest");
  });
});
