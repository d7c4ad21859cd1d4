// Shared fixtures for the handler tests and the benchmark: a real S3-protocol server (s3rver) on
// 127.0.0.1 behind a small proxy that adds S3's conditional-write rule, the libgourou stand-ins,
// ACSM documents and a fake Lambda context.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import S3rver from "s3rver";
import { isPublicAddress } from "../../lambda/src/address-policy";

export const TOOLS_DIR = resolve(__dirname, "../fixtures/libgourou/tools");
export const OUTPUT_BUCKET = "knock-output";
export const DEVICE_BUCKET = "knock-devices";

/** A local S3 endpoint with the two buckets; `close()` stops it and removes its files. */
export interface LocalS3 {
  readonly endpoint: string;
  /** Directory s3rver stores objects in. */
  readonly directory: string;
  close(): Promise<void>;
}

/**
 * Starts s3rver on a random port behind a proxy that implements what s3rver lacks: a PUT with
 * `If-None-Match: *` on an existing key answers 412 PreconditionFailed, and conditional PUTs on one
 * key are serialised so the check-then-write is atomic, like S3's.
 */
export async function startLocalS3(): Promise<LocalS3> {
  const directory = mkdtempSync(join(tmpdir(), "knock-s3rver-"));
  const s3rver = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: OUTPUT_BUCKET }, { name: DEVICE_BUCKET }],
  });
  const { port: upstreamPort } = await s3rver.run();
  const locks = new Map<string, Promise<void>>();

  const forward = (req: IncomingMessage, res: ServerResponse, body: NodeJS.ReadableStream): Promise<void> =>
    new Promise((done) => {
      const headers = { ...req.headers };
      delete headers.expect; // the proxy already answered 100-continue
      const up = request(
        { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          upRes.on("end", () => done());
          upRes.on("error", () => done());
        },
      );
      up.on("error", () => {
        res.writeHead(502).end();
        done();
      });
      body.pipe(up);
    });

  const exists = (path: string): Promise<boolean> =>
    new Promise((done, fail) => {
      request({ host: "127.0.0.1", port: upstreamPort, method: "HEAD", path }, (r) => {
        r.resume();
        done(r.statusCode === 200);
      })
        .on("error", fail)
        .end();
    });

  /** The current ETag of the object at `path`, or undefined when there is none. */
  const etagOf = (path: string): Promise<string | undefined> =>
    new Promise((done, fail) => {
      request({ host: "127.0.0.1", port: upstreamPort, method: "HEAD", path }, (r) => {
        r.resume();
        done(r.statusCode === 200 ? String(r.headers.etag ?? "") : undefined);
      })
        .on("error", fail)
        .end();
    });
  const s3Error = (res: ServerResponse, status: number, code: string, message: string, condition?: string): void => {
    res.writeHead(status, { "content-type": "application/xml" }).end(
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message>` +
        (condition ? `<Condition>${condition}</Condition>` : "") + "</Error>",
    );
  };
  const unquote = (etag: string): string => etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");

  const proxy: Server = createServer((req, res) => {
    // S3 user guide, conditional requests: PUT or DELETE with If-Match: <ETag> (or *) answers
    // 404 NoSuchKey when the key is absent and 412 PreconditionFailed when its ETag differs. (A
    // conflicting concurrent conditional write would get 409 ConditionalRequestConflict; requests
    // are serialised per key here, so that never happens.)
    const ifMatch = req.headers["if-match"];
    if ((req.method === "PUT" || req.method === "DELETE") && typeof ifMatch === "string") {
      const path = (req.url ?? "/").split("?")[0];
      const previous = locks.get(path) ?? Promise.resolve();
      const turn = previous.then(async () => {
        const current = await etagOf(path);
        if (current === undefined) {
          req.resume();
          s3Error(res, 404, "NoSuchKey", "The specified key does not exist.");
          return;
        }
        if (ifMatch.trim() !== "*" && unquote(ifMatch) !== unquote(current)) {
          req.resume();
          s3Error(res, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", "If-Match");
          return;
        }
        await forward(req, res, req);
      });
      locks.set(path, turn.catch(() => undefined));
      return;
    }
    const conditional = req.method === "PUT" && req.headers["if-none-match"] === "*";
    if (!conditional) {
      void forward(req, res, req);
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    const previous = locks.get(path) ?? Promise.resolve();
    const turn = previous.then(async () => {
      if (await exists(path)) {
        req.resume();
        res.writeHead(412, { "content-type": "application/xml" }).end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>' +
            "<Message>At least one of the pre-conditions you specified did not hold</Message>" +
            "<Condition>If-None-Match</Condition></Error>",
        );
        return;
      }
      await forward(req, res, req);
    });
    locks.set(path, turn.catch(() => undefined));
  });
  await new Promise<void>((done) => proxy.listen(0, "127.0.0.1", done));
  const { port } = proxy.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    async close() {
      await new Promise<void>((done) => proxy.close(() => done()));
      proxy.closeAllConnections();
      await s3rver.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Environment the handler and the AWS SDK read, pointing at the local S3 with dummy credentials. */
export function handlerEnv(s3: LocalS3, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OUTPUT_BUCKET,
    DEVICE_CREDENTIALS_BUCKET: DEVICE_BUCKET,
    DOWNLOAD_URL_EXPIRY_SECONDS: "900",
    LIBGOUROU_BIN_DIR: TOOLS_DIR,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    // s3rver would store aws-chunked framing inside objects sent with flexible checksums.
    AWS_REQUEST_CHECKSUM_CALCULATION: "when_required",
    AWS_RESPONSE_CHECKSUM_VALIDATION: "when_required",
    ...extra,
  };
}

/** Options for {@link makeAcsm}. */
export interface AcsmOptions {
  title?: string;
  format?: "application/epub+zip" | "application/pdf";
  /** Full operatorURL; drives the stand-in "server" (see test/fixtures/libgourou/libgourou-standin). */
  operatorURL?: string;
  expiration?: string;
  hmac?: boolean;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** An ADEPT fulfillment token shaped like the ones shops hand out, unique per call. */
export function makeAcsm(options: AcsmOptions = {}): string {
  const expiration = options.expiration ?? new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, "+00:00");
  return `<?xml version="1.0" encoding="UTF-8"?>
<fulfillmentToken fulfillmentType="buy" auth="user" xmlns="http://ns.adobe.com/adept">
  <distributor>urn:uuid:00000000-0000-4000-8000-000000000001</distributor>
  <operatorURL>${xmlEscape(options.operatorURL ?? "https://acs.example-shop.test/fulfillment")}</operatorURL>
  <transaction>${randomUUID()}</transaction>
  <expiration>${expiration}</expiration>
  <resourceItemInfo>
    <resource>urn:uuid:${randomUUID()}</resource>
    <resourceItem>0</resourceItem>
    <metadata>
      <dc:title xmlns:dc="http://purl.org/dc/elements/1.1/">${xmlEscape(options.title ?? "A Test Book")}</dc:title>
      <dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">Test Author</dc:creator>
      <dc:format xmlns:dc="http://purl.org/dc/elements/1.1/">${options.format ?? "application/epub+zip"}</dc:format>
    </metadata>
  </resourceItemInfo>
${options.hmac === false ? "" : "  <hmac>ZmFrZWhtYWNmb3J0ZXN0cw==</hmac>\n"}</fulfillmentToken>
`;
}

/** A Lambda context with a fresh request id and a deadline `budgetMs` from now. */
export function fakeContext(budgetMs = 60_000): { awsRequestId: string; getRemainingTimeInMillis: () => number } {
  const deadline = Date.now() + budgetMs;
  return { awsRequestId: randomUUID(), getRemainingTimeInMillis: () => deadline - Date.now() };
}

/** A Function URL (payload 2.0) event. */
export function urlEvent(method: string, body?: string, options: { base64?: boolean; contentType?: string } = {}): unknown {
  return {
    version: "2.0",
    rawPath: "/",
    headers: { "content-type": options.contentType ?? "application/json" },
    requestContext: { http: { method, path: "/", protocol: "HTTP/1.1", sourceIp: "203.0.113.9", userAgent: "test" } },
    body: body === undefined ? undefined : options.base64 ? Buffer.from(body).toString("base64") : body,
    isBase64Encoded: options.base64 === true,
  };
}

/** A self-signed certificate for `hosts` (made with the openssl CLI), for a local https server. */
export function selfSignedCert(hosts: string[]): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "knock-cert-"));
  try {
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${hosts[0]}`,
        "-addext", `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(",")}`,
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The handler's log records written to stdout by its default sink (the exported entry point) in
 * this test file so far, oldest first. test/support/handler-log-capture.ts (a vitest setup file)
 * collects them instead of letting them into the test run's output.
 */
export function capturedHandlerLogLines(): readonly string[] {
  const store = globalThis as unknown as Record<symbol, readonly string[] | undefined>;
  return store[Symbol.for("knock-lambda.test.handlerLogLines")] ?? [];
}

/**
 * The address the fake distributor's host names resolve to for the converter's egress proxy:
 * TEST-NET-3, which the default address policy refuses, so a test that wants it allowed must say so
 * (see {@link testEgress}).
 */
export const FAKE_DISTRIBUTOR_ADDRESS = "203.0.113.77";

/** A plain TCP/HTTP server (on 127.0.0.1 unless told otherwise) standing in for the distributor's ADEPT server. */
export interface FakeDistributor {
  readonly port: number;
  /** One entry per connection or request that reached it (`CONNECT` tunnels and forwarded requests). */
  readonly hits: string[];
  close(): Promise<void>;
}

/** Where {@link startFakeDistributor} listens. */
export interface FakeDistributorOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** @default 0 (a random port) */
  readonly port?: number;
}

/** Starts a {@link FakeDistributor}: it answers forwarded requests with 200 and accepts tunnels. */
export async function startFakeDistributor(options: FakeDistributorOptions = {}): Promise<FakeDistributor> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(200, { "content-type": "application/vnd.adobe.adept+xml" }).end("<envelope/>");
  });
  server.on("connection", () => hits.push("connection"));
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", done);
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/**
 * The egress policy the handler tests give the converter: the stand-in's fake ADEPT hosts (any
 * name under .test, as in {@link makeAcsm}, and Adobe's activation server) resolve to {@link FAKE_DISTRIBUTOR_ADDRESS}, which is
 * explicitly allowed and dialled at the fake distributor on 127.0.0.1. Every other address gets the
 * production rule (public unicast only), so loopback, private and metadata addresses stay refused.
 */
export function testEgress(distributor: { port: number }) {
  return {
    resolver: async (hostname: string) => {
      // adeactivate.adobe.com: Adobe's activation server (include/libgourou.h, ACS_SERVER).
      if (!hostname.endsWith(".test") && hostname !== "adeactivate.adobe.com") throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
      return [{ address: FAKE_DISTRIBUTOR_ADDRESS, family: 4 }];
    },
    isAllowedAddress: (address: string) => address === FAKE_DISTRIBUTOR_ADDRESS || isPublicAddress(address),
    route: (address: string, port: number) => (address === FAKE_DISTRIBUTOR_ADDRESS ? { host: "127.0.0.1", port: distributor.port } : { host: address, port }),
  };
}

/** The stand-in's own settings (FAKE_ADEPT_*) from this process, for the tools' minimal environment. */
export function standinEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith("FAKE_ADEPT_") && e[1] !== undefined));
}
