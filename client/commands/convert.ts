import { readFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { Command } from "commander";
import { otherFileKind, type ConversionAnswer, type OtherFileKind } from "../../lambda/src/public";
import { connect, withConnectionOptions, type Connection, type ConnectionFlags } from "../lib/connection";
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
  /** True when the service linked the book it had converted from this ACSM before (no new fulfilment). */
  readonly reused?: true;
  /** With --kindle: the mail that took the book to the Kindle (sent, never "delivered"). */
  readonly kindle?: { readonly sent: true; readonly to: string; readonly message_id: string; readonly attachment_name: string };
  readonly error_kind?: FailureKind;
  readonly error_type?: string;
  readonly error?: string;
}

interface ConvertFlags extends ConnectionFlags {
  readonly out: string;
  readonly json?: boolean;
  readonly kindle?: boolean;
}

/** The conversion's address, asking for Send to Kindle with `?deliver=kindle` (which works for the ACSM file as body). */
function conversionUrl(base: string | URL, kindle: boolean | undefined): URL {
  const url = new URL(String(base));
  if (kindle) url.searchParams.set("deliver", "kindle");
  return url;
}

/**
 * A Send to Kindle failure answered after the conversion: the error body carries the book's
 * `output_files`, so the book is still saved. Undefined for any other answer.
 */
function convertedButNotSent(answer: { status: number; body: Buffer }): { files: ConversionAnswer["output_files"]; errorType: string; error: string } | undefined {
  if (answer.status < 400) return undefined;
  try {
    const body = JSON.parse(answer.body.toString("utf8")) as { output_files?: unknown; error_type?: unknown; error?: unknown };
    if (!Array.isArray(body.output_files) || body.output_files.length === 0 || typeof body.error_type !== "string") return undefined;
    return { files: body.output_files as ConversionAnswer["output_files"], errorType: body.error_type, error: String(body.error ?? "") };
  } catch {
    return undefined;
  }
}

/** True for an input that is a URL (any scheme) rather than a file. */
function isUrl(input: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(input);
}

/** What the input is instead of an ACSM, in the words of the error line. */
const OTHER_FILE: Readonly<Record<OtherFileKind, string>> = {
  PDF: "this is a PDF, not an ACSM file",
  EPUB: "this is an EPUB, not an ACSM file",
  zip: "this is a zip archive, not an ACSM file",
  HTML: "this is a web page (HTML), not an ACSM file: the download may have saved the shop's page instead of the file",
};

/** The request for one input: the ACSM file itself, or `{"acsm_url": …}` for an https URL. */
async function requestFor(input: string): Promise<{ body: Buffer; contentType: string }> {
  if (isUrl(input)) {
    if (!input.toLowerCase().startsWith("https://")) {
      throw new CliError("input", "only https:// URLs are accepted (the service refuses other schemes): give the https:// address, or download the .acsm and pass the file.");
    }
    return { body: Buffer.from(JSON.stringify({ acsm_url: input })), contentType: "application/json" };
  }
  let body: Buffer;
  try {
    body = await readFile(input);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a folder, not an .acsm file" : code === "EACCES" ? "not readable" : String(code ?? err);
    throw new CliError("input", `${why}.`);
  }
  // The book or a web page instead of the ACSM: said before anything is sent (the same signatures
  // the service checks; latin1 keeps each byte one character).
  const other = otherFileKind(body.subarray(0, 512).toString("latin1"));
  if (other !== undefined) {
    throw new CliError("input", `${OTHER_FILE[other]}.\n  Pass the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.`);
  }
  return { body, contentType: ACSM_MEDIA_TYPE };
}

function requestIdFromKey(key: string | undefined): string | undefined {
  return key?.split("/")[1];
}

async function convertOne(input: string, conn: Connection, flags: ConvertFlags, reporter: Reporter, signal: AbortSignal): Promise<BookResult> {
  const label = isUrl(input) ? input : basename(input);
  const progress = reporter.book(label);
  try {
    const { body, contentType } = await requestFor(input);
    progress.phase("converting");
    const answer = await call({ method: "POST", url: conversionUrl(conn.address.url, flags.kindle), headers: { "content-type": contentType, accept: "application/json" }, body }, conn.sign, {
      connectTo: conn.connectTo,
      signal,
    });
    const unsent = flags.kindle ? convertedButNotSent(answer) : undefined;
    const result = unsent === undefined ? conversionAnswer(expectOk(answer, await conn.functionArn())) : undefined;
    const file = result?.output_files[0] ?? unsent!.files[0];
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
    if (unsent !== undefined) {
      // The book is saved; only the mail failed: said as this input's failure, with the service's words.
      const said = unsent.error.replace(/ The book itself is converted: .*$/, "");
      progress.failed(`${label} → ${path} (${formatBytes(file.size_bytes)}), but not sent to the Kindle: ${unsent.errorType}: ${said}`);
      return { input, ok: false, path, filename: basename(path), size_bytes: file.size_bytes, content_type: file.content_type, request_id: requestId, error_kind: "service", error_type: unsent.errorType, error: said };
    }
    progress.succeeded(`${label} → ${path} (${formatBytes(file.size_bytes)})`);
    if (result?.kindle) {
      reporter.note(`knock: sent to ${result.kindle.to} as "${result.kindle.attachment_name}" (message ${result.kindle.message_id}). Amazon sends no receipt: check the Kindle, and the sender's inbox for Amazon's failure notice.`);
    }
    if (result?.reused) {
      reporter.note(`knock: reused the book converted at ${result.converted_at ?? "an earlier request"}; no new fulfilment`);
    }
    return {
      input, ok: true, path, filename: basename(path), size_bytes: file.size_bytes, content_type: file.content_type, request_id: requestId,
      ...(result?.reused ? { reused: true as const } : {}),
      ...(result?.kindle ? { kindle: { sent: true as const, to: result.kindle.to, message_id: result.kindle.message_id, attachment_name: result.kindle.attachment_name } } : {}),
    };
  } catch (err) {
    // Ctrl-C shows up as whatever the aborted operation throws: an AbortError, or (Node 24, while a
    // response body streams) a connection reset. The signal says what really happened.
    if (signal.aborted || (err as Error).name === "AbortError") throw new CliError("interrupted", "Interrupted; no partial file was left behind.");
    // A usage error (no region to sign for) is no book's fault: it ends the run, exit 2.
    if (!(err instanceof CliError)) throw err;
    if (err.kind === "usage") {
      reporter.stop();
      throw err;
    }
    progress.failed(err.message.split("\n")[0]);
    const rest = err.message.split("\n").slice(1).join("\n");
    if (rest) reporter.note(rest);
    return { input, ok: false, error_kind: err.kind, error_type: err.details.errorType, error: err.message, request_id: err.details.requestId };
  }
}

/** `knock convert`: sends each ACSM to the service and saves the books. */
export function convertCommand(): Command {
  const command = new Command("convert")
    .description("Convert ACSM files (or https URLs of them) to EPUB/PDF and save the books")
    .argument("<acsm...>", "ACSM files, or https:// URLs of ACSM files")
    .option("--out <dir>", "folder to save the books in", ".");
  return withConnectionOptions(command)
    .option("--json", "print one JSON object per book on stdout")
    .option("--kindle", "also send each book to the Kindle the service is set up for (Send to Kindle by e-mail)")
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
