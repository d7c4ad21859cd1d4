// `knock convert` against a stand-in for a deployed Function URL with AWS_IAM auth: an https server
// on 127.0.0.1 with a certificate for `<id>.lambda-url.us-west-2.on.aws`, reached through
// KNOCK_CONNECT_TO. It checks each request's SigV4 signature the way Lambda does (AWS Lambda
// Developer Guide, "Invoking Lambda function URLs": Lambda recomputes the SigV4 signature for the
// service `lambda` and processes the request only if they match; SPEC: no unsigned payloads, so
// `x-amz-content-sha256` carries the body's hash) by recomputing it with the SDK's signer from the
// credentials the test gave the client. It also answers the failures only a deployed service
// gives: IAM's 403, expired credentials, an expired presigned download link (S3's 403
// "Request has expired"), and a slow download to interrupt.
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeAcsm, selfSignedCert } from "../handler/harness";
import { cleanup, cliEnv, knock, scratchDir, startKnock } from "./helpers";

const HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-west-2.on.aws";
const URL_ = `https://${HOST}/`;
const CREDS = { accessKeyId: "AKIDKNOCKTEST0000001", secretAccessKey: "knock/test/secret/key/0000000000000000000" };
const BOOK = Buffer.alloc(300_000, 7);

interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
}

type Mode = "ok" | "forbidden" | "expired-token" | "expired-link" | "slow-download";

const scratch: string[] = [];
let api: Server;
let files: Server;
let apiPort = 0;
let filesPort = 0;
let caFile = "";
let mode: Mode = "ok";
let received: Received[] = [];

/** Recomputes the Authorization header for what the server received, as Lambda would. */
async function expectedAuthorization(r: Received, overrides: { region?: string; service?: string; body?: Buffer } = {}): Promise<string> {
  const auth = String(r.headers.authorization);
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(auth)![1].split(";");
  const url = new URL(r.path, `https://${r.headers.host}`);
  const signer = new SignatureV4({ service: overrides.service ?? "lambda", region: overrides.region ?? "us-west-2", credentials: CREDS, sha256: Sha256 });
  const headers = Object.fromEntries(signedHeaders.map((h) => [h, String(r.headers[h])]));
  const body = overrides.body ?? r.body;
  if (overrides.body) headers["x-amz-content-sha256"] = createHash("sha256").update(body).digest("hex");
  const amzDate = String(r.headers["x-amz-date"]);
  const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const signed = await signer.sign(
    { method: r.method, protocol: "https:", hostname: url.hostname, path: url.pathname, query: Object.fromEntries(url.searchParams), headers, body },
    { signingDate },
  );
  return String(signed.headers.authorization);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => done(Buffer.concat(chunks)));
  });
}

beforeAll(async () => {
  const dir = scratchDir("knock-cert-", scratch);
  const { key, cert } = selfSignedCert([HOST]);
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, cert);

  files = createHttpServer((_req, res) => {
    if (mode === "expired-link") {
      res.writeHead(403, { "content-type": "application/xml" });
      res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
      return;
    }
    res.writeHead(200, { "content-type": "application/epub+zip", "content-length": BOOK.length });
    if (mode === "slow-download") {
      // Half the book, then nothing: the client is interrupted mid-download.
      res.write(BOOK.subarray(0, BOOK.length / 2));
      return;
    }
    res.end(BOOK);
  });
  await new Promise<void>((done) => files.listen(0, "127.0.0.1", done));
  filesPort = (files.address() as AddressInfo).port;

  api = createHttpsServer({ key, cert }, async (req, res) => {
    const body = await readBody(req);
    const r: Received = { method: req.method ?? "", path: req.url ?? "/", headers: req.headers, body };
    received.push(r);
    const reply = (status: number, answer: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { "content-type": "application/json", "x-amzn-requestid": "11111111-2222-3333-4444-555555555555", ...headers });
      res.end(JSON.stringify(answer));
    };
    if (mode === "forbidden") return reply(403, { Message: "Forbidden" }, { "x-amzn-errortype": "AccessDeniedException" });
    if (mode === "expired-token") return reply(403, { message: "The security token included in the request is expired" }, { "x-amzn-errortype": "ExpiredTokenException" });
    if (!r.headers.authorization || String(r.headers.authorization) !== (await expectedAuthorization(r))) {
      return reply(403, { message: "The request signature we calculated does not match the signature you provided." }, { "x-amzn-errortype": "InvalidSignatureException" });
    }
    if (req.method === "GET") return reply(200, { status: "ok", converter: { acsmdownloader: "Current libgourou version : 0.8.9" }, limits: {} });
    reply(200, {
      message: "ok",
      files_count: 1,
      output_files: [
        {
          filename: "Remote Book.epub",
          s3_key: "converted/11111111-2222-3333-4444-555555555555/Remote Book.epub",
          download_url: `http://127.0.0.1:${filesPort}/converted/book?X-Amz-Signature=abc`,
          size_bytes: BOOK.length,
          content_type: "application/epub+zip",
          expires_at: "2026-11-26T12:00:00.000Z",
        },
      ],
    });
  });
  await new Promise<void>((done) => api.listen(0, "127.0.0.1", done));
  apiPort = (api.address() as AddressInfo).port;
});

beforeEach(() => {
  mode = "ok";
  received = [];
});

afterAll(async () => {
  api.closeAllConnections();
  files.closeAllConnections();
  await new Promise<void>((done) => api.close(() => done()));
  await new Promise<void>((done) => files.close(() => done()));
  cleanup(scratch);
});

function remoteEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cliEnv({
    KNOCK_CONNECT_TO: `127.0.0.1:${apiPort}`,
    NODE_EXTRA_CA_CERTS: caFile,
    AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
    ...extra,
  });
}

function acsmFile(): { dir: string; path: string } {
  const dir = scratchDir("knock-remote-", scratch);
  const path = join(dir, "book.acsm");
  writeFileSync(path, makeAcsm({ title: "Remote Book" }));
  return { dir, path };
}

describe("SigV4 signing of requests to a Function URL", () => {
  it("signs the POST for service lambda in the URL's region, with the body's SHA-256 signed in x-amz-content-sha256", async () => {
    const { dir, path } = acsmFile();
    const run = await knock(["convert", "--url", URL_, "--out", dir, path], { env: remoteEnv() });

    expect(run.code).toBe(0);
    expect(run.stderr).toContain("SigV4 lambda/us-west-2");
    expect(received).toHaveLength(1);
    const [post] = received;
    const auth = String(post.headers.authorization);
    expect(auth).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/\\d{8}/us-west-2/lambda/aws4_request, `));
    expect(auth).toMatch(/SignedHeaders=[^,]*\bx-amz-content-sha256\b/);
    expect(post.headers["x-amz-content-sha256"]).toBe(createHash("sha256").update(post.body).digest("hex"));
    // The file itself was sent, as the ACSM media type.
    expect(post.body.toString("utf8")).toContain("<dc:title xmlns:dc=\"http://purl.org/dc/elements/1.1/\">Remote Book</dc:title>");
    expect(post.headers["content-type"]).toBe("application/vnd.adobe.adept+xml");
    // The server's recomputation agrees, and disagrees as soon as body, region or service differ.
    expect(await expectedAuthorization(post)).toBe(auth);
    expect(await expectedAuthorization(post, { body: Buffer.concat([post.body, Buffer.from(" ")]) })).not.toBe(auth);
    expect(await expectedAuthorization(post, { region: "us-east-1" })).not.toBe(auth);
    expect(await expectedAuthorization(post, { service: "execute-api" })).not.toBe(auth);
    expect(readdirSync(dir).sort()).toEqual(["Remote Book.epub", "book.acsm"]);
  });

  it("signs GET (health) too, and sends {acsm_url} for an https input", async () => {
    const health = await knock(["health", "--url", URL_], { env: remoteEnv() });
    expect(health.code).toBe(0);
    expect(await expectedAuthorization(received[0])).toBe(String(received[0].headers.authorization));

    const dir = scratchDir("knock-remote-", scratch);
    const run = await knock(["convert", "--url", URL_, "--out", dir, "https://shop.example/loan/123.acsm"], { env: remoteEnv() });
    expect(run.code).toBe(0);
    expect(JSON.parse(received[1].body.toString("utf8"))).toEqual({ acsm_url: "https://shop.example/loan/123.acsm" });
    expect(received[1].headers["content-type"]).toBe("application/json");
  });

  it("--region overrides the region in the host name (and then the signature no longer matches Lambda's)", async () => {
    const { dir, path } = acsmFile();
    const run = await knock(["convert", "--url", URL_, "--region", "eu-west-1", "--out", dir, path], { env: remoteEnv() });
    expect(String(received[0].headers.authorization)).toContain("/eu-west-1/lambda/aws4_request");
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("AWS rejected the request's signature");
    expect(run.stderr).toContain("--region matches the function's region");
  });
});

describe("failures only a deployed service gives", () => {
  it("403 from IAM: explains that both lambda:InvokeFunctionUrl and lambda:InvokeFunction are needed, with the policy", async () => {
    mode = "forbidden";
    const { dir, path } = acsmFile();
    const run = await knock(["convert", "--url", URL_, "--out", dir, path], { env: remoteEnv() });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("AWS denied access to the function URL (403 Forbidden) (request id 11111111-2222-3333-4444-555555555555)");
    expect(run.stderr).toContain("needs both lambda:InvokeFunctionUrl and lambda:InvokeFunction");
    expect(run.stderr).toContain('{"Effect":"Allow","Action":["lambda:InvokeFunctionUrl","lambda:InvokeFunction"],"Resource":"<lambda_function_arn stack output>"}');
  });

  it("expired credentials and missing credentials each get one message with the next step", async () => {
    mode = "expired-token";
    const { dir, path } = acsmFile();
    const expired = await knock(["convert", "--url", URL_, "--out", dir, path], { env: remoteEnv() });
    expect(expired.code).toBe(1);
    expect(expired.stderr).toContain("The security token included in the request is expired");
    expect(expired.stderr).toContain("aws sso login");

    const env = remoteEnv();
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const missing = await knock(["convert", "--url", URL_, "--out", dir, path], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No AWS credentials found \(the default chain\)/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    expect(received).toHaveLength(1); // nothing was sent unsigned
  });

  it("an expired download link says to convert again", async () => {
    mode = "expired-link";
    const { dir, path } = acsmFile();
    const run = await knock(["convert", "--url", URL_, "--out", dir, path], { env: remoteEnv() });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("The download link expired at 2026-11-26T12:00:00.000Z: convert the ACSM again for a fresh link.");
    expect(readdirSync(dir)).toEqual(["book.acsm"]);
  });

  it("Ctrl-C during the download removes the partial file", async () => {
    mode = "slow-download";
    const { dir, path } = acsmFile();
    const { child, done } = startKnock(["convert", "--url", URL_, "--out", dir, path], { env: remoteEnv() });
    // Wait until the partial file exists, then interrupt.
    const deadline = Date.now() + 20_000;
    while (!readdirSync(dir).some((n) => n.endsWith(".part")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(dir).some((n) => n.endsWith(".part"))).toBe(true);
    child.kill("SIGINT");
    const run = await done;
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("Interrupted; no partial file was left behind.");
    expect(readdirSync(dir)).toEqual(["book.acsm"]);
    expect(existsSync(join(dir, "Remote Book.epub"))).toBe(false);
  });
});
