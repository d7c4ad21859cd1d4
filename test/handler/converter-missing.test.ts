// A converter tool missing from the image, through the real handler: the answer names the tool and
// says what to do in the cloud (the image build, pulumi up), and carries the tool's name; `knock
// serve` says it for its tools folder instead, through the handler's missingToolMessage option.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../lambda/src/config";
import { TOOLS_DIR, fakeContext, makeAcsm, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** A tools folder with the stand-ins of `tools` only. */
function toolsFolder(...tools: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "knock-tools-"));
  scratch.push(dir);
  for (const t of tools) symlinkSync(join(TOOLS_DIR, t), join(dir, t));
  return dir;
}

const convertEvent = (acsm = makeAcsm()) => urlEvent("POST", JSON.stringify({ acsm_content: acsm }));

describe("a converter tool missing from the image", () => {
  it("is answered 500 ConverterMissing naming the tool, the image build and pulumi up", async () => {
    const handle = world.container({ config: { ...loadConfig(), toolsDir: toolsFolder() }, logSink: () => undefined });
    const res = await handle(convertEvent(), fakeContext());
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({
      error_type: "ConverterMissing",
      tool: "adept_activate",
      error: "The converter tool adept_activate is missing from the function's image: the image build must install it (lambda/Dockerfile); fix it and deploy again with pulumi up.",
    });
  });
});

describe("missingToolMessage (knock serve's tools hint)", () => {
  const hint = (tool: string): string => `No ${tool} in the tools folder: start with --tools DIR.`;

  it("is the error of a conversion's ConverterMissing, which keeps naming the tool", async () => {
    const handle = world.container({ config: { ...loadConfig(), toolsDir: toolsFolder() }, missingToolMessage: hint });
    const context = fakeContext();
    const res = await handle(convertEvent(), context);
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toEqual({ error: hint("adept_activate"), error_type: "ConverterMissing", request_id: context.awsRequestId, tool: "adept_activate" });
  });

  it("is the error of health's 500, which stays unhealthy", async () => {
    const handle = world.container({ config: { ...loadConfig(), toolsDir: toolsFolder() }, missingToolMessage: hint });
    const context = fakeContext();
    const res = await handle(urlEvent("GET"), context);
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toEqual({ error: hint("acsmdownloader"), error_type: "ConverterMissing", request_id: context.awsRequestId, status: "unhealthy" });
    // Without the option, health says it in its own words.
    const plain = await world.container({ config: { ...loadConfig(), toolsDir: toolsFolder() } })(urlEvent("GET"), fakeContext());
    expect(JSON.parse(plain.body).error).toBe("The converter tool acsmdownloader is missing or does not run.");
  });

  it("is the error of a loan return's ConverterMissing when adept_loan_mgt is missing", async () => {
    // A loan converted with every tool, then returned by a container whose folder lacks adept_loan_mgt.
    const acsm = makeAcsm({ title: "Borrowed", expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
    const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
    const id = createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16);
    expect((await world.container()(convertEvent(acsm), fakeContext())).statusCode).toBe(200);
    const lacking = world.container({
      config: { ...loadConfig(), toolsDir: toolsFolder("adept_activate", "acsmdownloader", "adept_remove") },
      missingToolMessage: hint,
    });
    const event = urlEvent("POST") as { rawPath: string; requestContext: { http: { path: string } } };
    event.rawPath = event.requestContext.http.path = `/loans/${id}/return`;
    const res = await lacking(event, fakeContext());
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({ error: hint("adept_loan_mgt"), error_type: "ConverterMissing", tool: "adept_loan_mgt" });
    expect((await world.loanStore.get(id))?.xml).toContain("<name>Borrowed</name>");
  });
});
