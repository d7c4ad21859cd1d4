import { readFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { Command } from "commander";
import { connect, type Connection, type ConnectionFlags } from "../lib/connection";
import { downloadToFolder, prepareOutputFolder } from "../lib/download";
import { CliError, EXIT_FAILED, type FailureKind } from "../lib/failures";
import { call } from "../lib/http";
import { conversionAnswer, expectOk, requestIdOf } from "../lib/service-answers";
import { createReporter, formatBytes, terminalStyle, type Reporter } from "../lib/progress";

/** The ACSM's media type (Adobe's registration for fulfillment tokens); Lambda hands such a body over base64-encoded. */
const ACSM_MEDIA_TYPE = "application/vnd.adobe.adept+xml";

/** Failures that would repeat for every input: stop instead of trying the rest. */
const FATAL: ReadonlySet<FailureKind> = new Set(["no-service-url", "credentials", "credentials-expired", "access-denied", "output-folder", "disk-full", "usage"]);

/** What happened to one input; `--json` prints exactly this, one object per line. */
export interface BookResult {
  readonly input: string;
  readonly ok: boolean;
  readonly path?: string;
  readonly filename?: string;
  readonly size_bytes?: number;
  readonly content_type?: string;
  readonly request_id?: string;
  readonly error_kind?: FailureKind;
  readonly error_type?: string;
  readonly error?: string;
}

interface ConvertFlags extends ConnectionFlags {
  readonly out: string;
  readonly json?: boolean;
}

/** The request for one input: the ACSM file itself, or `{"acsm_url": …}` for an https URL. */
async function requestFor(input: string): Promise<{ body: Buffer; contentType: string }> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    if (!input.toLowerCase().startsWith("https://")) {
      throw new CliError("input", "only https:// URLs are accepted (the service refuses other schemes).");
    }
    return { body: Buffer.from(JSON.stringify({ acsm_url: input })), contentType: "application/json" };
  }
  try {
    return { body: await readFile(input), contentType: ACSM_MEDIA_TYPE };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a folder, not an .acsm file" : code === "EACCES" ? "not readable" : String(code ?? err);
    throw new CliError("input", `${why}.`);
  }
}

function requestIdFromKey(key: string | undefined): string | undefined {
  return key?.split("/")[1];
}

async function convertOne(input: string, conn: Connection, flags: ConvertFlags, reporter: Reporter, signal: AbortSignal): Promise<BookResult> {
  const label = /^https:\/\//i.test(input) ? input : basename(input);
  const progress = reporter.book(label);
  try {
    const { body, contentType } = await requestFor(input);
    progress.phase("converting");
    const answer = await call({ method: "POST", url: conn.address.url, headers: { "content-type": contentType, accept: "application/json" }, body }, conn.sign, {
      connectTo: conn.connectTo,
      signal,
    });
    const result = conversionAnswer(expectOk(answer, await conn.functionArn()));
    const file = result.output_files[0];
    const requestId = requestIdOf(answer) ?? requestIdFromKey(file.s3_key);
    const path = await downloadToFolder({
      url: new URL(file.download_url),
      dir: flags.out,
      filename: file.filename,
      expectedBytes: file.size_bytes,
      expiresAt: file.expires_at,
      progress: progress.download,
      signal,
    });
    progress.succeeded(`${label} → ${path} (${formatBytes(file.size_bytes)})`);
    return { input, ok: true, path, filename: basename(path), size_bytes: file.size_bytes, content_type: file.content_type, request_id: requestId };
  } catch (err) {
    // Ctrl-C shows up as whatever the aborted operation throws: an AbortError, or (Node 24, while a
    // response body streams) a connection reset. The signal says what really happened.
    if (signal.aborted || (err as Error).name === "AbortError") throw new CliError("interrupted", "Interrupted; no partial file was left behind.");
    if (!(err instanceof CliError)) throw err;
    progress.failed(err.message.split("\n")[0]);
    const rest = err.message.split("\n").slice(1).join("\n");
    if (rest) reporter.note(rest);
    return { input, ok: false, error_kind: err.kind, error_type: err.details.errorType, error: err.message, request_id: err.details.requestId };
  }
}

/** `knock convert`: sends each ACSM to the service and saves the books. */
export function convertCommand(): Command {
  return new Command("convert")
    .description("Convert ACSM files (or https URLs of them) to EPUB/PDF and save the books")
    .argument("<acsm...>", "ACSM files, or https:// URLs of ACSM files")
    .option("--out <dir>", "folder to save the books in", ".")
    .option("--url <url>", "service address (default: $KNOCK_URL, else `pulumi stack output function_url`)")
    .option("--region <region>", "AWS region to sign for (default: the one in the Function URL)")
    .option("--profile <name>", "AWS profile for the credentials (default: $AWS_PROFILE)")
    .option("--token <token>", "access token of a TOKEN deployment (default: $KNOCK_TOKEN, else the stack's access_token output)")
    .option("--json", "print one JSON object per book on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n  $ npx knock convert ~/Downloads/URLLink.acsm\n  $ npx knock convert --out ~/Books --url http://127.0.0.1:9000 a.acsm b.acsm\n",
    )
    .action(async (inputs: string[], flags: ConvertFlags) => {
      const reporter = createReporter(process.stderr, terminalStyle(process.stderr));
      const out = resolve(flags.out);
      await prepareOutputFolder(out);
      const conn = await connect(flags, (line) => reporter.note(line));

      const controller = new AbortController();
      const onSigint = (): void => {
        reporter.stop();
        controller.abort();
      };
      process.once("SIGINT", onSigint);
      const results: BookResult[] = [];
      try {
        for (const input of inputs) {
          const result = await convertOne(input, conn, { ...flags, out }, reporter, controller.signal);
          results.push(result);
          if (flags.json) process.stdout.write(JSON.stringify(result) + "\n");
          if (!result.ok && result.error_kind && FATAL.has(result.error_kind)) break;
        }
      } finally {
        process.off("SIGINT", onSigint);
      }
      const ok = results.filter((r) => r.ok).length;
      const failed = results.length - ok;
      const skipped = inputs.length - results.length;
      if (inputs.length > 1 || failed > 0) {
        reporter.note(`${ok} converted, ${failed} failed${skipped > 0 ? `, ${skipped} not tried` : ""}`);
      }
      if (failed > 0 || skipped > 0) process.exitCode = EXIT_FAILED;
    });
}
