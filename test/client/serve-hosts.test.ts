// `knock serve` answers only for its own names (issue 16): a page on a name an attacker points at
// 127.0.0.1 (DNS rebinding) is, to the browser, the server's own origin, so only the server can
// refuse it — by its Host header, before anything runs. Download links name the address the server
// listens on (or --public-url), never the request's Host. Raw HTTP on sockets, against the real
// server module with the libgourou stand-ins and against the real `knock serve` process.
// Rules: RFC 9110 §7.2 (Host), §15.5.20 (421 Misdirected Request); RFC 9112 §3.2 (Host required in
// HTTP/1.1, more than one is 400) and §3.2.2 (an absolute-form target overrides Host).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createFunctionUrlServer } from "../../client/serve/function-url-server";
import type { FunctionUrlEvent } from "../../client/serve/function-url-event";
import { hostAllowList, parseAllowedHost, parsePublicUrl } from "../../client/serve/host-check";
import { startLocalService } from "../../client/serve/local-service";
import { makeAcsm } from "../handler/harness";
import { cleanup, knock, scratchDir, startKnock, startStandinService, type StandinService } from "./helpers";
import { jsonBody, rawHttp, type RawAnswer } from "./raw-http";

const scratch: string[] = [];
let service: StandinService;
let port: number;

beforeAll(async () => {
  service = await startStandinService();
  port = Number(new URL(service.url).port);
});

afterAll(async () => {
  await service.stop();
  cleanup(scratch);
});

/** GET `path` with exactly this Host line (or none). */
function get(target: number, path: string, host: string | undefined, version = "1.1"): Promise<RawAnswer> {
  return rawHttp(target, [`GET ${path} HTTP/${version}`, ...(host === undefined ? [] : [`Host: ${host}`])]);
}

/** POST an ACSM as JSON with this Host line. */
function convert(target: number, host: string, acsm = makeAcsm()): Promise<RawAnswer> {
  const body = JSON.stringify({ acsm_content: acsm });
  return rawHttp(target, ["POST / HTTP/1.1", `Host: ${host}`, "Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`], body);
}

function activations(stateDir: string): number {
  const file = join(stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
}

function storedBooks(dataDir: string): string[] {
  const root = join(dataDir, "books", "converted");
  return existsSync(root) ? readdirSync(root).sort() : [];
}

/** The refusal every foreign Host gets: 421, the handler's error shape, the host and the reason. */
function expectRefused(answer: RawAnswer, host: string | null): void {
  expect(answer.status).toBe(421);
  expect(answer.headers["content-type"]).toBe("application/json");
  expect(answer.headers["cache-control"]).toBe("no-store");
  const body = jsonBody<{ error: string; error_type: string; request_id: string; refused_host: string | null }>(answer);
  expect(body.error_type).toBe("MisdirectedRequest");
  expect(body.refused_host).toBe(host);
  expect(body.request_id).toBe(answer.headers["x-amzn-requestid"]);
  expect(body.error).toContain("DNS rebinding");
  expect(body.error).toContain("--allowed-host");
  if (host !== null) expect(body.error).toContain(`"${host}"`);
}

describe("the Host allow-list on loopback", () => {
  it("accepts 127.0.0.1, localhost and [::1], with the listening port or none, in any letter case", async () => {
    for (const host of ["127.0.0.1", `127.0.0.1:${port}`, "localhost", `localhost:${port}`, "[::1]", `[::1]:${port}`, `LocalHost:${port}`]) {
      const answer = await get(port, "/loans", host);
      expect(answer.status, host).toBe(200);
      expect(jsonBody(answer), host).toHaveProperty("loans");
    }
  });

  it("refuses a foreign Host with 421 before the handler runs: nothing converted, no activation, no loans read", async () => {
    const before = { activations: activations(service.stateDir), books: storedBooks(service.dataDir) };
    const host = `evil.test:${port}`;

    const posted = await convert(port, host);
    expectRefused(posted, host);
    const listed = await get(port, "/loans", host);
    expectRefused(listed, host);
    expect(jsonBody(listed)).not.toHaveProperty("loans");

    expect(activations(service.stateDir)).toBe(before.activations);
    expect(storedBooks(service.dataDir)).toEqual(before.books);
    // The handler never saw the requests: the only lines naming their ids are the refusal and the access line.
    for (const answer of [posted, listed]) {
      const id = answer.headers["x-amzn-requestid"];
      const lines = service.logs.filter((l) => l.includes(id));
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain('"message":"request refused"');
      expect(lines[1]).toMatch(new RegExp(` 421 \\d+ms request_id=${id}$`));
    }
  });

  it("refuses names that only look like its own: another port, another loopback address, a longer or dotted name", async () => {
    for (const host of [`127.0.0.1:${port + 1}`, `127.0.0.2:${port}`, `127.0.0.1.evil.test:${port}`, `localhost.:${port}`, `[::1]:${port + 1}`, `0.0.0.0:${port}`, `localhost:${port}@evil.test`]) {
      expectRefused(await get(port, "/", host), host);
    }
  });

  it("refuses an HTTP/1.0 request without Host with 421; HTTP/1.1 without Host and two Host fields are 400 (RFC 9112 §3.2)", async () => {
    const bare = await get(port, "/loans", undefined, "1.0");
    expectRefused(bare, null);
    expect(jsonBody<{ error: string }>(bare).error).toContain("no Host header (HTTP/1.0)");
    expect(jsonBody<{ error: string }>(bare).error).toContain(`127.0.0.1:${port}`);

    const noHost = await get(port, "/loans", undefined, "1.1");
    expect(noHost.status).toBe(400);
    expect(jsonBody(noHost)).toMatchObject({ error_type: "BadRequest", refused_host: null, error: "The request has no Host header, which HTTP/1.1 requires." });

    const twice = await rawHttp(port, ["GET /loans HTTP/1.1", `Host: 127.0.0.1:${port}`, "Host: evil.test"]);
    expect(twice.status).toBe(400);
    expect(jsonBody(twice)).toMatchObject({ error_type: "BadRequest", refused_host: `127.0.0.1:${port},evil.test` });
  });

  it("takes the host of an absolute-form target over Host (RFC 9112 §3.2.2): a foreign one is refused", async () => {
    expectRefused(await get(port, `http://evil.test:${port}/loans`, `127.0.0.1:${port}`), `evil.test:${port}`);
    expect((await get(port, `http://127.0.0.1:${port}/`, "evil.test")).status).not.toBe(421);
  });

  it("refuses the download links under a foreign Host too, and serves them under its own", async () => {
    const answer = await convert(port, `127.0.0.1:${port}`);
    expect(answer.status).toBe(200);
    const link = new URL(jsonBody<{ output_files: { download_url: string }[] }>(answer).output_files[0].download_url);
    const path = `${link.pathname}${link.search}`;
    expectRefused(await get(port, path, `evil.test:${port}`), `evil.test:${port}`);
    const ok = await get(port, path, `localhost:${port}`);
    expect(ok.status).toBe(200);
    expect(ok.body.length).toBe(65536);
  });
});

describe("download links", () => {
  it("name the address the server listens on, whichever accepted name the request used", async () => {
    for (const host of [`localhost:${port}`, "localhost", "[::1]", "127.0.0.1"]) {
      const answer = await convert(port, host);
      expect(answer.status, host).toBe(200);
      const url = jsonBody<{ output_files: { download_url: string }[] }>(answer).output_files[0].download_url;
      expect(url.startsWith(`http://127.0.0.1:${port}/_downloads/converted/`), `${host}: ${url}`).toBe(true);
    }
  });

  it("name the listening address for a name added with allowedHosts too, and never that name", async () => {
    const local = await startStandinService({ allowedHosts: ["knock.lan"] });
    try {
      const localPort = Number(new URL(local.url).port);
      const answer = await convert(localPort, `knock.lan:${localPort}`);
      expect(answer.status).toBe(200);
      const url = new URL(jsonBody<{ output_files: { download_url: string }[] }>(answer).output_files[0].download_url);
      expect(url.origin).toBe(`http://127.0.0.1:${localPort}`);
      expect((await fetch(url)).status).toBe(200);
      expectRefused(await get(localPort, "/", `other.lan:${localPort}`), `other.lan:${localPort}`);
    } finally {
      await local.stop();
    }
  });

  it("start with publicUrl when one is given (path kept, trailing slash dropped), and its host:port is accepted", async () => {
    const proxied = await startStandinService({ publicUrl: "https://knock.example:8443/books/" });
    try {
      const localPort = Number(new URL(proxied.url).port);
      expect(proxied.publicUrl).toBe("https://knock.example:8443/books");
      const answer = await convert(localPort, "knock.example:8443");
      expect(answer.status).toBe(200);
      const url = jsonBody<{ output_files: { download_url: string }[] }>(answer).output_files[0].download_url;
      expect(url.startsWith("https://knock.example:8443/books/_downloads/converted/")).toBe(true);
      // What the proxy would forward after taking off its /books prefix: the same signed link works.
      const forwarded = url.slice("https://knock.example:8443/books".length);
      const book = await get(localPort, forwarded, "knock.example:8443");
      expect(book.status).toBe(200);
      expect(book.body.length).toBe(65536);
      // The public URL names its port, so only that port goes with its name.
      expectRefused(await get(localPort, "/", `knock.example:${localPort}`), `knock.example:${localPort}`);
    } finally {
      await proxied.stop();
    }
  });

  it("startLocalService refuses a bad publicUrl or allowedHosts value, naming the option, before it takes the data folder", async () => {
    const dataDir = scratchDir("knock-data-", scratch);
    await expect(startLocalService({ port: 0, dataDir, publicUrl: "ftp://knock.example/" })).rejects.toThrow(/^publicUrl: .*http:\/\/ or https:\/\//);
    await expect(startLocalService({ port: 0, dataDir, allowedHosts: ["knock.lan/x"] })).rejects.toThrow(/^allowedHosts: "knock\.lan\/x" is not a host name/);
    expect(existsSync(join(dataDir, "serve.lock"))).toBe(false);
  });
});

describe("which hosts a given bind answers for (hostAllowList)", () => {
  const at = (check: ReturnType<typeof hostAllowList>, host: string | undefined, localAddress: string) =>
    check({ httpVersion: "1.1", url: "/", rawHeaders: host === undefined ? [] : ["Host", host], localAddress, localPort: 9000 });

  it("bound to one address beyond loopback: that address and the added names, not localhost", () => {
    const check = hostAllowList({ bindHost: "192.0.2.10", allowedHosts: ["knock.lan", "proxy.lan:8080"] });
    for (const host of ["192.0.2.10:9000", "192.0.2.10", "knock.lan:9000", "knock.lan", "proxy.lan:8080"]) expect(at(check, host, "192.0.2.10"), host).toBeUndefined();
    for (const host of ["localhost:9000", "127.0.0.1:9000", "[::1]:9000", "proxy.lan:9000", "proxy.lan", "evil.test:9000"]) expect(at(check, host, "192.0.2.10")?.statusCode, host).toBe(421);
  });

  it("bound to every interface: the address each connection arrived at (IPv4-mapped unwrapped, IPv6 in brackets) and the loopback names", () => {
    const check = hostAllowList({ bindHost: "::" });
    expect(at(check, "192.0.2.10:9000", "::ffff:192.0.2.10")).toBeUndefined();
    expect(at(check, "[2001:db8::5]:9000", "2001:db8::5")).toBeUndefined();
    expect(at(check, "localhost:9000", "::ffff:127.0.0.1")).toBeUndefined();
    // An address of this machine other than the one the connection came in on is not accepted.
    expect(at(check, "198.51.100.7:9000", "::ffff:192.0.2.10")?.statusCode).toBe(421);
  });

  it("normalises --allowed-host and --public-url values, and explains what it refuses", () => {
    expect(parseAllowedHost("Knock.LAN")).toBe("knock.lan");
    expect(parseAllowedHost("fe80::1")).toBe("[fe80::1]");
    expect(parseAllowedHost("[fe80::1]:8080")).toBe("[fe80::1]:8080");
    expect(parseAllowedHost("knock_serve:09000")).toBe("knock_serve:9000");
    for (const bad of ["", "a b", "knock.lan/x", "knock.lan:0", "knock.lan:70000", "http://knock.lan", "[not-v6]", "-knock.lan"]) {
      expect(() => parseAllowedHost(bad), bad).toThrow(/is not a host name/);
    }
    expect(parsePublicUrl("https://knock.example/")).toBe("https://knock.example");
    expect(parsePublicUrl("http://Knock.Example:80/a/b//")).toBe("http://knock.example/a/b");
    for (const [bad, reason] of [
      ["knock.example", /is not a URL/],
      ["ftp://knock.example", /http:\/\/ or https:\/\//],
      ["https://u:p@knock.example", /user name or password/],
      ["https://knock.example/?", /query/],
      ["https://knock.example/#", /fragment/],
      ["https://knock.example/?a=1", /query/],
    ] as const) {
      expect(() => parsePublicUrl(bad), bad).toThrow(reason);
    }
  });
});

describe("the Function URL event behind knock serve", () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
    server = undefined;
  });

  it("carries the request's own host, origin, sec-fetch-site and content-type headers, lower-cased, as a Function URL passes them", async () => {
    const events: FunctionUrlEvent[] = [];
    const check = hostAllowList({ bindHost: "127.0.0.1" });
    server = createFunctionUrlServer({
      handler: async (event) => {
        events.push(event);
        return { statusCode: 204 };
      },
      admit: (req) => {
        const r = check({ httpVersion: req.httpVersion, url: req.url ?? "/", rawHeaders: req.rawHeaders, localAddress: req.socket.localAddress!, localPort: req.socket.localPort! });
        return r && { statusCode: r.statusCode, errorType: r.errorType, message: r.message };
      },
      log: () => undefined,
    });
    await new Promise<void>((done) => server!.listen(0, "127.0.0.1", done));
    const p = (server.address() as AddressInfo).port;
    const status = await new Promise<number>((done, fail) => {
      const headers = ["Host", `LocalHost:${p}`, "Origin", "http://127.0.0.2:8000", "Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain;charset=UTF-8"];
      const req = request({ host: "127.0.0.1", port: p, method: "POST", path: "/", headers: headers as unknown as Record<string, string> }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on("error", fail);
      req.end("<fulfillmentToken/>");
    });
    expect(status).toBe(204);
    expect(events).toHaveLength(1);
    expect(events[0].headers).toMatchObject({
      host: `LocalHost:${p}`,
      origin: "http://127.0.0.2:8000",
      "sec-fetch-site": "cross-site",
      "content-type": "text/plain;charset=UTF-8",
    });
    expect(events[0].body).toBe("<fulfillmentToken/>");
  });

  it("so the handler's cross-origin refusal applies to knock serve: a foreign Origin is 403 CrossOriginRequest, the page's own origin passes", async () => {
    const body = JSON.stringify({ acsm_content: makeAcsm() });
    const head = (origin: string) => ["POST / HTTP/1.1", `Host: 127.0.0.1:${port}`, `Origin: ${origin}`, "Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`];
    const foreign = await rawHttp(port, head("http://127.0.0.2:8000"), body);
    expect(foreign.status).toBe(403);
    expect(jsonBody(foreign)).toMatchObject({ error_type: "CrossOriginRequest" });
    const own = await rawHttp(port, head(`http://127.0.0.1:${port}`), body);
    expect(own.status).toBe(200);
  });
});

describe("the knock serve process", () => {
  /** Starts `knock serve ARGS` and waits for its "listening on" line (or for `ready` on stderr). */
  async function serve(args: string[], ready = /listening on http:\/\/\S+:(\d+)/) {
    const run = startKnock(["serve", "--port", "0", "--data", scratchDir("knock-data-", scratch), "--tools", scratchDir("knock-notools-", scratch), ...args]);
    let stderr = "";
    await new Promise<void>((up, fail) => {
      run.child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (ready.test(stderr)) up();
      });
      run.child.on("exit", () => fail(new Error(`knock serve exited: ${stderr}`)));
    });
    return { ...run, port: Number(/listening on http:\/\/\S+:(\d+)/.exec(stderr)![1]), stderr: () => stderr };
  }

  it("--allowed-host adds names on loopback (with the listening port, or exactly the port given); others are refused", async () => {
    const run = await serve(["--allowed-host", "Knock.LAN", "--allowed-host", "box.lan:8080"], /also answers for Host .*\n/);
    try {
      expect(run.stderr()).toContain("also answers for Host knock.lan, box.lan:8080");
      // Past the allow-list the handler answers: without tools, 500 ConverterMissing.
      for (const host of [`knock.lan:${run.port}`, "knock.lan", "box.lan:8080", `127.0.0.1:${run.port}`]) {
        const answer = await get(run.port, "/", host);
        expect(answer.status, host).toBe(500);
        expect(jsonBody(answer).error_type, host).toBe("ConverterMissing");
      }
      for (const host of [`box.lan:${run.port}`, `other.lan:${run.port}`]) expectRefused(await get(run.port, "/", host), host);
    } finally {
      run.child.kill("SIGINT");
      await run.done;
    }
  });

  it("beyond loopback answers for its addresses and the added names (asking for the token), and its access link uses --public-url", async () => {
    const run = await serve(["--host", "0.0.0.0", "--allowed-host", "knock.lan", "--public-url", "https://knock.example/"], /#token=\S+\n\n[\s\S]*▀/);
    try {
      expect(run.stderr()).toContain("download links start with https://knock.example\n");
      expect(run.stderr()).toMatch(/\n {2}https:\/\/knock\.example\/#token=[A-Za-z0-9_-]{43}\n/);
      for (const host of [`127.0.0.1:${run.port}`, `localhost:${run.port}`, `knock.lan:${run.port}`, "knock.example"]) {
        expect((await get(run.port, "/", host)).status, host).toBe(401);
      }
      expectRefused(await get(run.port, "/", `evil.test:${run.port}`), `evil.test:${run.port}`);
    } finally {
      run.child.kill("SIGINT");
      await run.done;
    }
  });

  it("a bad --public-url or --allowed-host is a usage error (exit 2) that names the flag and what is allowed, and nothing starts", async () => {
    for (const [flag, value, reason] of [
      ["--public-url", "knock.example", "is not a URL"],
      ["--public-url", "ftp://knock.example", "must start with http:// or https://"],
      ["--public-url", "https://knock.example/?a=1", "must not have a query"],
      ["--public-url", "https://knock.example/#top", "or a fragment"],
      ["--public-url", "https://me:pw@knock.example", "user name or password"],
      ["--allowed-host", "knock.lan/path", "is not a host name"],
      ["--allowed-host", "knock.lan:99999", "is not a host name"],
    ]) {
      const run = await knock(["serve", "--port", "0", "--data", scratchDir("knock-data-", scratch), flag, value]);
      expect(run.code, value).toBe(2);
      expect(run.stderr, value).toContain(`option '${flag} `);
      expect(run.stderr, value).toContain(reason);
      expect(run.stderr, value).not.toContain("listening on");
    }
  });
});
