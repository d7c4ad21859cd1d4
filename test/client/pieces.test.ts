// The client's shared pieces on their own: finding the service, file names, terminal style.
import { describe, expect, it } from "vitest";
import { connect } from "../../client/lib/connection";
import { candidateName, sanitizeFileName } from "../../client/lib/download";
import { terminalStyle } from "../../client/lib/progress";
import { findServiceAddress, isLocalUrl, regionOfFunctionUrl } from "../../client/lib/service-address";

describe("finding the service", () => {
  it("prefers --url, then KNOCK_URL, then the Pulumi stack output, and names the source", async () => {
    const stack = async (name: string) => (name === "function_url" ? "https://abc.lambda-url.eu-west-3.on.aws/" : undefined);
    expect((await findServiceAddress("http://127.0.0.1:9000", { KNOCK_URL: "http://localhost:1" }, stack)).source).toBe("--url");
    const env = await findServiceAddress(undefined, { KNOCK_URL: "http://localhost:1" }, stack);
    expect([env.source, env.url.port]).toEqual(["KNOCK_URL", "1"]);
    const fromStack = await findServiceAddress(undefined, {}, stack);
    expect([fromStack.source, fromStack.url.host]).toEqual(["pulumi stack output function_url", "abc.lambda-url.eu-west-3.on.aws"]);
    await expect(findServiceAddress(undefined, {}, async () => undefined)).rejects.toThrow(/No service address: pass --url URL or set KNOCK_URL/);
    await expect(findServiceAddress("ftp://x", {}, stack)).rejects.toThrow(/must be an http\(s\) URL/);
  });

  it("reads the region from a Function URL host and treats only loopback as local", () => {
    expect(regionOfFunctionUrl(new URL("https://abc123.lambda-url.ap-southeast-2.on.aws/"))).toBe("ap-southeast-2");
    expect(regionOfFunctionUrl(new URL("https://example.com/"))).toBeUndefined();
    expect(["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000", "http://127.1.2.3/"].every((u) => isLocalUrl(new URL(u)))).toBe(true);
    expect(["http://0.0.0.0:9000", "http://192.168.1.2:9000", "https://abc.lambda-url.us-east-1.on.aws/", "http://localhost.evil.example/"].some((u) => isLocalUrl(new URL(u)))).toBe(false);
  });
});

describe("the stack's token and ARN", () => {
  // A fake of `pulumi stack output`: the stack's outputs, and every output asked for, in order.
  const stackOutputs = (outputs: Record<string, string>) => {
    const asked: string[] = [];
    const read = async (name: string, options?: { readonly showSecrets?: boolean }) => {
      asked.push(options?.showSecrets ? `${name} --show-secrets` : name);
      return name === "access_token" && !options?.showSecrets ? "[secret]" : outputs[name];
    };
    return { read, asked };
  };
  const url = "https://abc.lambda-url.eu-west-3.on.aws/";

  it("asks the Pulumi CLI for function_url once, for both the token and the ARN", async () => {
    const stack = stackOutputs({ function_url: url, access_token: "tok", lambda_function_arn: "arn:aws:lambda:eu-west-3:1:function:f" });
    const conn = await connect({ url }, () => undefined, stack.read);
    expect(await conn.functionArn()).toBe("arn:aws:lambda:eu-west-3:1:function:f");
    expect(await conn.sign({ method: "GET", url: new URL(url), headers: {} })).toMatchObject({ authorization: "Bearer tok" });
    expect(stack.asked.filter((n) => n === "function_url")).toHaveLength(1);
  });

  it("takes neither from a stack whose function_url is another address", async () => {
    const stack = stackOutputs({ function_url: "https://other.lambda-url.eu-west-3.on.aws/", access_token: "tok", lambda_function_arn: "arn" });
    const conn = await connect({ url, region: "eu-west-3" }, () => undefined, stack.read);
    expect(await conn.functionArn()).toBeUndefined();
    expect(stack.asked).toEqual(["function_url"]);
  });
});

describe("file names", () => {
  it("keeps the service's name but never a path, a hidden name or control characters", () => {
    expect(sanitizeFileName("Les Misérables.epub")).toBe("Les Misérables.epub");
    expect(sanitizeFileName("../../etc/passwd")).toBe("_.._etc_passwd");
    expect(sanitizeFileName("a\\b/c.pdf")).toBe("a_b_c.pdf");
    expect(sanitizeFileName(".hidden.epub")).toBe("hidden.epub");
    expect(sanitizeFileName("bad\u0000\nname.epub")).toBe("bad__name.epub");
    expect(sanitizeFileName("")).toBe("book");
    const long = sanitizeFileName("é".repeat(300) + ".epub");
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(200);
    expect(long.endsWith(".epub")).toBe(true);
    expect([0, 1, 2].map((n) => candidateName("Title.epub", n))).toEqual(["Title.epub", "Title (1).epub", "Title (2).epub"]);
  });
});

describe("terminal style", () => {
  it("animates only on a TTY outside CI and colours unless NO_COLOR or TERM=dumb", () => {
    expect(terminalStyle({ isTTY: true }, {})).toEqual({ animate: true, color: true });
    expect(terminalStyle({ isTTY: false }, {})).toEqual({ animate: false, color: false });
    expect(terminalStyle({ isTTY: true }, { NO_COLOR: "1" })).toEqual({ animate: true, color: false });
    expect(terminalStyle({ isTTY: true }, { CI: "true" })).toEqual({ animate: false, color: true });
    expect(terminalStyle({ isTTY: true }, { TERM: "dumb" })).toEqual({ animate: false, color: false });
  });
});
