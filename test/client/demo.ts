// `npm run demo`: `knock serve`'s service with the libgourou stand-ins and the handler tests' fake
// distributor, plus example ACSM files, so that anyone can try the client and produce the README's
// transcripts without libgourou, Adobe or a network. The real tools never run here: with them,
// `npx knock serve --tools DIR` is the command to use.
//
//   npm run demo                 # port 9123, beside a real `knock serve` on 9000
//   npm run demo -- --port 0     # any free port
//
// test/readme-transcripts.test.ts runs the README's transcripts against startDemo, so what this
// prints and what the README shows stay the same.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { makeAcsm } from "../handler/harness";
import { startStandinService, type StandinService } from "./helpers";

/** The port the README's transcripts use: not `knock serve`'s 9000, so both can run at once. */
export const DEMO_PORT = 9123;

/** One example ACSM file the demo writes. */
export interface DemoAcsm {
  readonly file: string;
  readonly title: string;
  /** A library loan (listed by `knock loans`), or a purchase. */
  readonly loan: boolean;
}

/**
 * The example files: a purchase, a loan, one whose token has expired, and two loans whose titles
 * share a word (for `knock return dune`). Fixed transactions give fixed loan ids (libgourou names a
 * loan after the SHA-1 of its id, `urn:uuid:<transaction>`), so the ids in the README are the ids a
 * reader gets.
 */
const EXAMPLES = [
  { file: "URLLink.acsm", title: "Les Misérables", loan: false, format: "application/epub+zip", transaction: "0d2c5d2e-8f5a-4c47-9a51-000000000001", days: 1 },
  { file: "Loan.acsm", title: "The Time Machine", loan: true, format: "application/pdf", transaction: "0d2c5d2e-8f5a-4c47-9a51-000000000002", days: 7 },
  { file: "Old.acsm", title: "An Old Order", loan: false, format: "application/epub+zip", transaction: "0d2c5d2e-8f5a-4c47-9a51-000000000003", days: undefined },
  { file: "Dune.acsm", title: "Dune", loan: true, format: "application/epub+zip", transaction: "0d2c5d2e-8f5a-4c47-9a51-000000000004", days: 14 },
  { file: "Dune Messiah.acsm", title: "Dune Messiah", loan: true, format: "application/epub+zip", transaction: "0d2c5d2e-8f5a-4c47-9a51-000000000005", days: 14 },
] as const;

/** When the expired example's token expired (the transcript's `AcsmExpired`). */
export const EXPIRED_AT = "2025-01-01T00:00:00+00:00";

/**
 * An example's ACSM: a loan ends (and a purchase's token expires) `days` after `now`, at 10:00 UTC,
 * as a library's loan period is counted in days; the expired one ended at {@link EXPIRED_AT}.
 */
function exampleAcsm(example: (typeof EXAMPLES)[number], now: Date): string {
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + (example.days ?? 0), 10));
  const expiration = example.days === undefined ? EXPIRED_AT : end.toISOString().replace(/\.\d+Z$/, "+00:00");
  const acsm = makeAcsm({
    title: example.title,
    format: example.format,
    expiration,
    operatorURL: example.loan ? "https://acs.example-library.test/fulfillment" : "https://acs.example-shop.test/fulfillment",
  }).replace(/<transaction>[^<]*<\/transaction>/, `<transaction>${example.transaction}</transaction>`);
  return example.loan ? acsm.replace('fulfillmentType="buy"', 'fulfillmentType="loan"') : acsm;
}

/** A running demo: the service, and the folder with the example files (and the service's data). */
export interface Demo {
  readonly url: string;
  /** Holds the example ACSM files; `Books/` is where the printed commands save the books. */
  readonly dir: string;
  readonly examples: readonly DemoAcsm[];
  readonly service: StandinService;
  /** Stops the service and the fake distributor and removes {@link dir}. */
  stop(): Promise<void>;
}

/** Starts the demo service on `port` and writes the example files into a new temporary folder. */
export async function startDemo(options: { port?: number; now?: Date; log?: (line: string) => void } = {}): Promise<Demo> {
  const dir = mkdtempSync(join(tmpdir(), "knock-demo-"));
  try {
    const now = options.now ?? new Date();
    for (const example of EXAMPLES) writeFileSync(join(dir, example.file), exampleAcsm(example, now));
    // The fake distributor's own state (its activation count), beside the service's data.
    const stateDir = join(dir, ".distributor");
    mkdirSync(stateDir);
    const service = await startStandinService({
      port: options.port ?? DEMO_PORT,
      dataDir: join(dir, ".service"),
      stateDir,
      log: options.log ?? (() => undefined),
    });
    return {
      url: service.url,
      dir,
      examples: EXAMPLES.map(({ file, title, loan }) => ({ file, title, loan })),
      service,
      async stop() {
        await service.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The commands of the README's transcripts, in order, for the service at `url` (run in the project
 * folder, with `DEMO` set to the demo's folder). test/readme-transcripts.test.ts holds the README to
 * exactly these.
 */
export function transcriptCommands(url: string): string[] {
  return [
    `npx knock convert --url ${url} --out "$DEMO/Books" "$DEMO/URLLink.acsm" "$DEMO/Loan.acsm" "$DEMO/Old.acsm"; echo exit=$?`,
    `npx knock convert --url ${url} --out "$DEMO/Books" "$DEMO/Dune.acsm" "$DEMO/Dune Messiah.acsm"`,
    `npx knock loans --url ${url}`,
    `npx knock return --url ${url} --yes "time machine"`,
    `npx knock return --url ${url} dune`,
    `npx knock loans --url ${url}`,
  ];
}

/** What the demo prints once it listens: where, and the commands that give the README's transcripts. */
export function instructions(demo: Pick<Demo, "url" | "dir">): string {
  return [
    `knock demo: listening on ${demo.url}, with the libgourou stand-ins and a fake distributor (no network, no Adobe)`,
    `knock demo: example ACSM files in ${demo.dir}`,
    "",
    "In another terminal, in this project folder, the README's transcripts (\"Convert a book with knock\",",
    "then \"Returning a library loan\"):",
    `  DEMO=${demo.dir}`,
    ...transcriptCommands(demo.url).map((c) => `  ${c}`),
    "",
    "The test suite's sample loan (run it after those, or `knock loans` lists it too):",
    `  npx knock convert --url ${demo.url} --out "$DEMO/Books" test/fixtures/libgourou/sample-book.acsm`,
    "",
    "Ctrl-C stops the service and removes that folder. The service's log follows.",
  ].join("\n");
}

async function main(): Promise<void> {
  let port: number;
  try {
    const { values } = parseArgs({ options: { port: { type: "string", default: String(DEMO_PORT) } } });
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a whole number from 0 to 65535, not ${values.port}`);
  } catch (err) {
    process.stderr.write(`knock demo: ${(err as Error).message}\n  Usage: npm run demo -- [--port N]\n`);
    process.exitCode = 2;
    return;
  }
  let demo: Demo;
  try {
    demo = await startDemo({ port, log: (line) => process.stderr.write(line + "\n") });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    process.stderr.write(
      code === "EADDRINUSE"
        ? `knock demo: port ${port} is in use (another demo?): stop it, or run npm run demo -- --port 0 for a free one.\n`
        : `knock demo: could not start: ${(err as Error).message}\n`,
    );
    // Exit now: a fake distributor started before the failure would keep the process running.
    process.exit(1);
  }
  process.stdout.write(instructions(demo) + "\n");
  const stop = (): void => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    void demo.stop().then(() => process.stderr.write(`knock demo: stopped; removed ${demo.dir}\n`));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (require.main === module) void main();
