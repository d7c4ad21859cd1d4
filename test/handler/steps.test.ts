// The handler's steps as plain functions: parse, validate, address policy, tool output parsing and
// mapping, the child-process runner, device document format, download naming, configuration.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseBody, parseJsonObject, readConversion } from "../../lambda/src/request";
import { MAX_BODY_BYTES, ROUTES } from "../../lambda/src/contract";
import { routeOf } from "../../lambda/src/routes";
import { validateAcsm } from "../../lambda/src/acsm";
import { isPublicAddress } from "../../lambda/src/address-policy";
import { LibgourouError, mapLibgourouError, parseToolFailure } from "../../lambda/src/libgourou";
import { runTool } from "../../lambda/src/run-tool";
import { decodeDevice, encodeDevice, DEVICE_DOCUMENT_FORMAT } from "../../lambda/src/device";
import { contentDisposition } from "../../lambda/src/output-store";
import { safetyMarginMs } from "../../lambda/src/handler";
import { safeFileName } from "../../lambda/src/use-cases/convert";
import { loadConfig } from "../../lambda/src/config";
import { AcsmExpiredError, BadRequestError, PayloadTooLargeError } from "../../lambda/src/errors";
import { downloadName, downloadOutputArgs } from "../../lambda/src/convert";
import { TOOLS_DIR, makeAcsm, urlEvent } from "./harness";

describe("readConversion", () => {
  it("prefers content over url when both loose keys are present, and keeps filename", () => {
    expect(parseJsonObject({ acsmURL: "https://x.test/a.acsm", ACSM_Content: "<x/>", filename: "a.acsm" })).toEqual({
      source: { kind: "content", content: "<x/>" },
      filename: "a.acsm",
    });
    expect(parseJsonObject({ theAcsmUrl: " https://x.test/a.acsm " })).toMatchObject({ source: { kind: "url", url: "https://x.test/a.acsm" } });
  });

  it("rejects non-string ACSM values naming the key", () => {
    expect(() => parseJsonObject({ acsm_content: 5 })).toThrow(/"acsm_content" must be a non-empty string/);
  });

  it("treats a body starting with '<' (after a BOM) as a raw ACSM", () => {
    expect(parseBody("\uFEFF  <fulfillmentToken/>")).toMatchObject({ source: { kind: "content", content: "<fulfillmentToken/>" } });
  });

  it("routes GET as health whatever the body, any direct invocation as a conversion, and reads a non-object one as bad input", () => {
    expect(routeOf(urlEvent("GET", "ignored"), ROUTES).route.id).toBe("health");
    expect(routeOf("just a string", ROUTES).route.id).toBe("convert");
    expect(() => readConversion("just a string")).toThrow(BadRequestError);
    expect(() => readConversion([1, 2])).toThrow(BadRequestError);
  });

  it("accepts exactly the limit and refuses one byte more", () => {
    const at = "<" + "a".repeat(MAX_BODY_BYTES - 1);
    expect(readConversion(urlEvent("POST", at))).toMatchObject({ source: { kind: "content" } });
    expect(() => readConversion(urlEvent("POST", at + "a"))).toThrow(PayloadTooLargeError);
    expect(() => readConversion(urlEvent("POST", at + "a", { base64: true }))).toThrow(PayloadTooLargeError);
    expect(() => readConversion({ acsm_content: at + "a" })).toThrow(PayloadTooLargeError);
  });
});

describe("validateAcsm", () => {
  const now = new Date("2026-06-01T00:00:00Z");

  it("accepts a token in the ADEPT namespace, default or prefixed, and reads title and expiration", () => {
    const info = validateAcsm(makeAcsm({ title: "Tom &amp; Jerry", expiration: "2026-06-02T00:00:00+00:00" }), now);
    expect(info).toEqual({
      expiration: "2026-06-02T00:00:00+00:00",
      title: "Tom &amp; Jerry",
      format: "application/epub+zip",
      operatorURL: "https://acs.example-shop.test/fulfillment",
    });
    // <operatorURL> and <hmac> keep their literal names: libgourou looks them up without namespaces.
    const prefixed =
      '<adept:fulfillmentToken xmlns:adept="http://ns.adobe.com/adept"><adept:expiration>2027-01-01T00:00:00Z</adept:expiration>' +
      '<operatorURL xmlns="http://ns.adobe.com/adept">https://acs.example.test/f</operatorURL><hmac xmlns="http://ns.adobe.com/adept">aA==</hmac></adept:fulfillmentToken>';
    expect(validateAcsm(prefixed, now).expiration).toBe("2027-01-01T00:00:00Z");
  });

  it("refuses a fulfillmentToken in another namespace", () => {
    expect(() => validateAcsm('<fulfillmentToken xmlns="http://example.com/x"></fulfillmentToken>', now)).toThrow(/not an ACSM file/);
  });

  it("answers 410 for a past expiration and 400 for one that is not a date", () => {
    expect(() => validateAcsm(makeAcsm({ expiration: "2026-05-31T23:59:59Z" }), now)).toThrow(AcsmExpiredError);
    expect(() => validateAcsm(makeAcsm({ expiration: "soon" }), now)).toThrow(/"soon" is not a date/);
  });
});

describe("acsmdownloader's output arguments", () => {
  it("lets the tool name the book after its title in the download folder", () => {
    expect(downloadName("Les Misérables", "application/epub+zip")).toBeUndefined();
    expect(downloadOutputArgs("/tmp/w/download-1", undefined)).toEqual(["-O", "/tmp/w/download-1"]);
  });

  it("gives a title too long for a file name one full -o path, never -o with -O (libgourou 0.8.9 refuses both)", () => {
    const name = downloadName("Ж".repeat(200), "application/pdf");
    expect(name).toMatch(/^Ж+\.pdf$/);
    expect(Buffer.byteLength(name!)).toBeLessThanOrEqual(200);
    const args = downloadOutputArgs("/tmp/w/download-1", name);
    expect(args).toEqual(["-o", `/tmp/w/download-1/${name}`]);
    expect(args).not.toContain("-O");
  });
});

describe("isPublicAddress", () => {
  it.each(["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1"])("allows %s", (a) => {
    expect(isPublicAddress(a)).toBe(true);
  });
  it.each([
    "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.127.255.255", "0.0.0.0", "255.255.255.255", "224.0.0.1", "::1", "::", "fe80::1", "fd12:3456::1", "fc00::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:a00:1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "ff02::1", "not-an-ip",
  ])("refuses %s", (a) => {
    expect(isPublicAddress(a)).toBe(false);
  });
});

describe("tool failures", () => {
  it("parses the Exception code / Message lines libgourou prints on stdout", () => {
    expect(parseToolFailure("Some log\nException code : 0x1003\nMessage        : E_GOOGLE_DEVICE_LIMIT_REACHED\n")).toEqual({
      exceptionCode: "0x1003",
      message: "E_GOOGLE_DEVICE_LIMIT_REACHED",
    });
    expect(parseToolFailure("Error : d/devicesalt doesn't exists, did you activate your device ?\n").message).toMatch(/devicesalt/);
  });

  it.each([
    ["0x1003", "E_GOOGLE_DEVICE_LIMIT_REACHED", 409],
    ["0x1003", "E_ADEPT_REQUEST_EXPIRED", 502],
    ["0x1003", "E_ADEPT_DISTRIBUTOR_AUTH", 502],
    ["0x500b", "Error Couldn't resolve host name", 502],
    ["0x5011", "HTTP Error code 500", 502],
    ["0x1101", "Invalid ACSM file", 400],
    ["0x1102", "hmac tag not found in ACSM file", 400],
    ["0x1104", "OperatorURL not found in ACSM document", 400],
    ["0x1000", "User and device fingerprint does not match", 500],
    ["0x1103", "Not activated", 500],
    ["0x6003", "Unsupported file format of x.drm", 500],
  ])("maps %s %s to %i", (code, message, status) => {
    expect(mapLibgourouError(new LibgourouError("acsmdownloader", 1, code, message)).statusCode).toBe(status);
  });

  it("maps a device whose activation belongs to another device key (0x1000) to DeviceUnavailable", () => {
    const err = mapLibgourouError(new LibgourouError("acsmdownloader", 1, "0x1000", "User and device fingerprint does not match"));
    expect(err.errorType).toBe("DeviceUnavailable");
    expect(err.message).toMatch(/fingerprint does not match.*device bucket/);
  });
});

describe("runTool", () => {
  it("stops adept_activate's endless [y/N] prompt on an existing directory by bounding its output", async () => {
    const dir = mkdtempSync(join(tmpdir(), "knock-existing-"));
    try {
      const run = await runTool(join(TOOLS_DIR, "adept_activate"), ["-a", "-r", "-O", dir], { timeoutMs: 10_000, maxOutputBytes: 64 * 1024 });
      expect(run.outputOverflow).toBe(true);
      expect(run.timedOut).toBe(false);
      expect(run.output.length).toBeLessThanOrEqual(64 * 1024);
      expect(run.output).toContain("Would you like to continue ? [y/N]");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports the missing device files the way acsmdownloader does (exit 255)", async () => {
    const run = await runTool(join(TOOLS_DIR, "acsmdownloader"), ["-D", "/nonexistent", "-O", "/tmp", "x.acsm"], { timeoutMs: 10_000 });
    expect(run.exitCode).toBe(255);
    expect(run.output).toBe(
      ["devicesalt", "device.xml", "activation.xml"].map((f) => `Error : /nonexistent/${f} doesn't exists, did you activate your device ?\n`).join(""),
    );
  });

  it("passes arguments without a shell", async () => {
    const run = await runTool(process.execPath, ["-e", "process.stdout.write(process.argv[1])", "$(echo hi); `x`"], { timeoutMs: 10_000 });
    expect(run.output).toBe("$(echo hi); `x`");
  });
});

describe("device document", () => {
  it("round-trips the three device files and rejects incomplete documents", () => {
    const files = { "device.xml": Buffer.from("<d/>"), "activation.xml": Buffer.from("<a/>"), devicesalt: Buffer.from([0, 1, 255]) };
    const text = encodeDevice(files, new Date("2026-01-01T00:00:00Z"));
    expect(JSON.parse(text)).toMatchObject({ format: DEVICE_DOCUMENT_FORMAT, created_at: "2026-01-01T00:00:00.000Z" });
    expect(decodeDevice(text)).toEqual(files);
    const broken = JSON.parse(text) as { files: Record<string, string> };
    delete broken.files.devicesalt;
    expect(() => decodeDevice(JSON.stringify(broken))).toThrow(/lacks devicesalt/);
  });
});

describe("names and limits", () => {
  it("builds an RFC 6266 Content-Disposition with an ASCII fallback", () => {
    expect(contentDisposition("Book (1).epub")).toBe(`attachment; filename="Book (1).epub"; filename*=UTF-8''Book%20%281%29.epub`);
    expect(contentDisposition("Čas\\x.pdf")).toBe(`attachment; filename="_as_x.pdf"; filename*=UTF-8''%C4%8Cas%5Cx.pdf`);
  });

  it("keeps S3 key segments free of separators and short, preserving the extension", () => {
    expect(safeFileName("a/b\\c\u0001.epub")).toBe("a_b_c_.epub");
    const long = safeFileName("é".repeat(300) + ".pdf");
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(200);
    expect(long.endsWith(".pdf")).toBe(true);
  });

  it("keeps back a margin of the remaining time for upload and response", () => {
    expect(safetyMarginMs(2_000)).toBe(300);
    expect(safetyMarginMs(900_000)).toBe(30_000);
    expect(safetyMarginMs(100)).toBe(250);
  });
});

describe("loadConfig", () => {
  const base = { OUTPUT_BUCKET: "o", DEVICE_CREDENTIALS_BUCKET: "d", LIBGOUROU_BIN_DIR: "/opt/bin" };

  it("defaults the URL expiry to 3600 s and prefers AWS_ENDPOINT_URL_S3", () => {
    expect(loadConfig(base)).toEqual({ outputBucket: "o", deviceBucket: "d", downloadUrlExpirySeconds: 3600, toolsDir: "/opt/bin", s3Endpoint: undefined });
    expect(loadConfig({ ...base, AWS_ENDPOINT_URL: "http://a", AWS_ENDPOINT_URL_S3: "http://b" }).s3Endpoint).toBe("http://b");
    expect(loadConfig({ ...base, AWS_ENDPOINT_URL: "http://a" }).s3Endpoint).toBe("http://a");
  });

  it("fails loudly naming a missing or invalid variable", () => {
    expect(() => loadConfig({ ...base, OUTPUT_BUCKET: "" })).toThrow(/OUTPUT_BUCKET is required/);
    expect(() => loadConfig({ ...base, LIBGOUROU_BIN_DIR: undefined })).toThrow(/LIBGOUROU_BIN_DIR is required/);
    expect(() => loadConfig({ ...base, DOWNLOAD_URL_EXPIRY_SECONDS: "1.5" })).toThrow(/DOWNLOAD_URL_EXPIRY_SECONDS is "1.5"/);
    expect(() => loadConfig({ ...base, DOWNLOAD_URL_EXPIRY_SECONDS: "604801" })).toThrow(/604800/);
  });
});
