// No route to a host the converter needs (no internet, a name that does not resolve, a server that
// refuses), through the real handler, the real egress proxy and the libgourou stand-ins: the answer
// names the host the proxy could not reach and where the problem is — the service on Lambda, this
// machine under knock serve — instead of "Could not talk to the distributor's server: HTTP Error code 502".
import { createServer, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createHandler } from "../../lambda/src/handler";
import type { Resolver } from "../../lambda/src/fetch-acsm";
import { FAKE_DISTRIBUTOR_ADDRESS, fakeContext, makeAcsm, standinEnv, testEgress, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();

afterEach(async () => {
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
  // Each case starts without a device, so that the first request activates one (or fails to).
  await world.deviceStore.remove();
});

/** DNS that resolves only `names` (to the fake distributor), as a machine without internet resolves nothing. */
function dnsFor(...names: string[]): Resolver {
  const works = testEgress(world.distributor).resolver;
  return async (hostname) => {
    if (!names.includes(hostname)) throw Object.assign(new Error(`getaddrinfo EAI_AGAIN ${hostname}`), { code: "EAI_AGAIN" });
    return works(hostname);
  };
}

/** A handler with its own /tmp whose converter reaches the network through `resolver`. */
function handlerWith(resolver: Resolver, route?: (address: string, port: number) => { host: string; port: number }) {
  return world.container({
    egress: { ...testEgress(world.distributor), resolver, ...(route ? { route } : {}) },
    // FAKE_ADEPT_NO_RETRY_PAUSE: the stand-in still makes libcurl's five attempts, without the pauses between them.
    toolEnv: () => ({ ...standinEnv(), FAKE_ADEPT_NO_RETRY_PAUSE: "1" }),
  });
}

async function convert(handle: ReturnType<typeof createHandler>, operatorURL?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await handle(urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm(operatorURL ? { operatorURL } : {}) })), fakeContext());
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
}

describe("a host the converter cannot reach", () => {
  it("no internet under knock serve: names Adobe's activation host and says this machine has no route to it", async () => {
    const { status, body } = await convert(handlerWith(dnsFor()));
    expect(status).toBe(502);
    expect(body).toMatchObject({ error_type: "UpstreamError", unreachable_host: "adeactivate.adobe.com", unreachable_reason: "does not resolve" });
    expect(body.error).toBe(
      "This machine has no route to adeactivate.adobe.com (Adobe's activation server): the name does not resolve. " +
        "Check this machine's internet connection and DNS, then try again.",
    );
    expect(String(body.error)).not.toMatch(/Could not talk|HTTP Error code|Failure when receiving/);
  });

  it("on Lambda, says the service has no route to it", async () => {
    process.env.AWS_LAMBDA_FUNCTION_NAME = "knock-lambda-function";
    const { status, body } = await convert(handlerWith(dnsFor()));
    expect(status).toBe(502);
    expect(body.error).toBe(
      "The service has no route to adeactivate.adobe.com (Adobe's activation server): the name does not resolve. " +
        "Try again later; if it keeps failing, the function's network has no internet access.",
    );
  });

  it.each([
    // An http: server answered through the proxy: libgourou reports the proxy's 502 as 0x5011 "HTTP Error code 502".
    ["http", "http://acs.gone-shop.test/fulfillment"],
    // An https: server is a CONNECT tunnel: libcurl reports the proxy's 502 as 0x500b, a receive error.
    ["https", "https://acs.gone-shop.test/fulfillment"],
  ])("names a distributor host that does not resolve (%s)", async (_scheme, operatorURL) => {
    const { status, body } = await convert(handlerWith(dnsFor("adeactivate.adobe.com")), operatorURL);
    expect(status).toBe(502);
    expect(body).toMatchObject({ error_type: "UpstreamError", unreachable_host: "acs.gone-shop.test" });
    expect(body.error).toMatch(/^This machine has no route to acs\.gone-shop\.test: the name does not resolve\./);
  });

  it("says a host refused the connection when its address resolved but nothing listens there", async () => {
    // A port that was free a moment ago: nothing answers it.
    const closed: Server = createServer();
    await new Promise<void>((done) => closed.listen(0, "127.0.0.1", done));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((done) => closed.close(() => done()));
    const toDistributor = testEgress(world.distributor).route;
    const handle = handlerWith(dnsFor("adeactivate.adobe.com", "acs.down-shop.test"), (address, p) =>
      p === 8443 && address === FAKE_DISTRIBUTOR_ADDRESS ? { host: "127.0.0.1", port } : toDistributor(address, p),
    );
    const { status, body } = await convert(handle, "https://acs.down-shop.test:8443/fulfillment");
    expect(status).toBe(502);
    expect(body).toMatchObject({ unreachable_host: "acs.down-shop.test", unreachable_reason: "refused the connection" });
    expect(body.error).toBe("acs.down-shop.test refused the connection: its server may be down. Try again later.");
  });

  it("keeps the tool's own words when the proxy reached every host (a server that answered 503)", async () => {
    const { status, body } = await convert(handlerWith(dnsFor("adeactivate.adobe.com", "acs.example-shop.test")), "https://acs.example-shop.test/fulfillment?http_status=503");
    expect(status).toBe(502);
    expect(body.unreachable_host).toBeUndefined();
    expect(body.error).toBe("Could not talk to the distributor's server: HTTP Error code 503.");
  });
});
