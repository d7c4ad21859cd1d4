// The curl examples of docs/api.md, run as written by the real curl against `knock serve` (the real
// handler with the libgourou stand-ins, on 127.0.0.1, open like `function_url_auth = NONE`, so
// `SIGN` is empty as the docs say): each must be answered, not refused as a foreign page's request
// or for its Content-Type. And the form the docs used to give — plain `--data-binary @book.acsm`,
// which curl sends as application/x-www-form-urlencoded — gets a 415 that names the flag to add.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "./harness";
import { cleanup, scratchDir, startStandinService, type StandinService } from "../client/helpers";

const run = promisify(execFile);
const API_DOC = resolve(__dirname, "../../docs/api.md");

let service: StandinService;
const scratch: string[] = [];

beforeAll(async () => {
  service = await startStandinService();
});

afterAll(async () => {
  await service.stop();
  cleanup(scratch);
});

/** The text of a `## ` section of the API reference. */
function section(markdown: string, title: string): string {
  const start = markdown.indexOf(`\n## ${title}\n`);
  expect(start, `docs/api.md has a "## ${title}" section`).toBeGreaterThan(-1);
  const end = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

/**
 * The curl commands the API reference gives for requests and loans: the examples column of the
 * request table, and the lines of the loans' bash block. The `acsm_url` example is left out: it
 * would make the service fetch a real shop's address, and its Content-Type is that of the
 * acsm_content example, which runs.
 */
function documentedCommands(): string[] {
  const doc = readFileSync(API_DOC, "utf8");
  const requests = [...section(doc, "Requests").matchAll(/^\|[^|]*\| `(curl [^`]+)` \|$/gm)].map((m) => m[1]);
  const loansBlock = /```bash\n([\s\S]*?)```/.exec(section(doc, "Library loans"))?.[1] ?? "";
  const loans = loansBlock.split("\n").filter((l) => l.startsWith("curl "));
  return [...requests, ...loans].filter((c) => !c.includes("acsm_url"));
}

/** Runs `command` with bash as a reader of the docs would, in a folder holding book.acsm; returns its JSON answer. */
async function runDocumented(command: string): Promise<Record<string, unknown>> {
  const dir = scratchDir("knock-curl-", scratch);
  writeFileSync(join(dir, "book.acsm"), makeAcsm({ title: "From The Docs" }));
  // Proxies would take the request off 127.0.0.1; everything else is the user's environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
  const script = `set -euo pipefail\nURL=${JSON.stringify(service.url)}\nSIGN=()\n${command}\n`;
  const { stdout } = await run("bash", ["-c", script], { cwd: dir, env, timeout: 60_000 });
  const answer = existsSync(join(dir, "answer.json")) ? readFileSync(join(dir, "answer.json"), "utf8") : stdout;
  return JSON.parse(answer) as Record<string, unknown>;
}

describe("the API reference's curl examples against knock serve", () => {
  it("lists the examples this test runs", () => {
    const commands = documentedCommands();
    expect(commands.some((c) => c.includes("--data-binary @book.acsm"))).toBe(true);
    expect(commands.some((c) => c.includes("acsm_content"))).toBe(true);
    expect(commands.some((c) => c.includes("/loans"))).toBe(true);
  });

  it.each(documentedCommands().map((c) => [c]))("%s", async (command) => {
    const answer = await runDocumented(command);
    expect(["UnsupportedMediaType", "CrossOriginRequest", "BadRequest"]).not.toContain(answer.error_type);
    if (command.includes("book.acsm")) expect(answer).toMatchObject({ files_count: 1, output_files: [{ filename: "From The Docs.epub" }] });
    else if (command.includes("/loans/")) expect(answer.error_type).toBe("NoSuchLoan"); // the docs' example ids are not stored here
    else if (command.includes("/loans")) expect(answer).toHaveProperty("loans");
    else expect(answer).toMatchObject({ status: "ok" });
  });
});

describe("plain curl --data-binary @book.acsm", () => {
  it("is 415 with the flag to add, and converts nothing", async () => {
    const books = join(service.dataDir, "books", "converted");
    const stored = () => (existsSync(books) ? readdirSync(books).length : 0);
    const before = stored();
    const answer = await runDocumented('curl -sS --data-binary @book.acsm "$URL"');
    expect(stored()).toBe(before);
    expect(answer.error_type).toBe("UnsupportedMediaType");
    expect(answer.content_type).toBe("application/x-www-form-urlencoded");
    expect(String(answer.error)).toContain("-H 'Content-Type: application/vnd.adobe.adept+xml' --data-binary @book.acsm");
  });

  it("converts once the flag is added", async () => {
    const answer = await runDocumented(`curl -sS -H 'Content-Type: application/vnd.adobe.adept+xml' --data-binary @book.acsm "$URL"`);
    expect(answer).toMatchObject({ files_count: 1 });
  });
});
