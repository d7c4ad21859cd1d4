import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { connect, withConnectionOptions, type ConnectionFlags } from "../lib/connection";
import { CliError, EXIT_FAILED, type FailureKind } from "../lib/failures";
import { callService, fetchLoans, formatExpiry, matchLoans, type LoanEntry } from "../lib/loans";
import { createReporter, terminalStyle } from "../lib/progress";

/** Failures that would repeat for every loan: stop instead of trying the rest. */
const FATAL: ReadonlySet<FailureKind> = new Set(["no-service-url", "credentials", "credentials-expired", "access-denied", "dns", "network"]);

interface ReturnFlags extends ConnectionFlags {
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly forget?: boolean;
}

/** What happened to one loan; `--json` prints exactly this, one object per line. */
export interface ReturnResult {
  readonly id: string;
  readonly title?: string;
  readonly action: "returned" | "forgotten";
  readonly ok: boolean;
  readonly error_type?: string;
  readonly error?: string;
  readonly request_id?: string;
}

/**
 * Asks on the terminal; Enter, "n" or end of input is no. Ctrl-C interrupts (exit 130) instead of
 * leaving readline paused with the question pending forever.
 */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const abort = new AbortController();
  let interrupted = false;
  rl.on("SIGINT", () => {
    interrupted = true;
    abort.abort();
  });
  rl.on("close", () => abort.abort());
  try {
    return /^y(es)?$/i.test((await rl.question(question, { signal: abort.signal })).trim());
  } catch {
    if (interrupted) throw new CliError("interrupted", "Interrupted; nothing was returned.");
    return false;
  } finally {
    rl.close();
  }
}

function describe(loan: LoanEntry): string {
  return `${loan.id}  ${loan.title ?? "(unreadable token)"}  (ends ${formatExpiry(loan.expires_at)}${loan.expired ? ", expired" : ""})`;
}

/** `knock return`: gives library loans back early (or forgets them with --forget). */
export function returnCommand(): Command {
  const command = new Command("return")
    .description("Return a library loan early, by its id or part of its title (knock loans lists them)")
    .argument("<loan>", "the loan's id, or part of its title (every loan whose title contains it)")
    .option("-y, --yes", "do not ask for confirmation (needed when not on a terminal)")
    .option("--forget", "forget the loan without telling the library (for loans that ended or were returned elsewhere)");
  return withConnectionOptions(command)
    .option("--json", "print one JSON object per loan on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n  $ npx knock return 'time machine'\n  $ npx knock return --yes 3f9a0c1d2e4b5a69\n  $ npx knock return --forget 3f9a0c1d2e4b5a69\n",
    )
    .action(async (query: string, flags: ReturnFlags) => {
      const reporter = createReporter(process.stderr, terminalStyle(process.stderr));
      const conn = await connect(flags, (line) => reporter.note(line));
      const { loans } = await fetchLoans(conn);
      const matches = matchLoans(loans, query);
      if (matches.length === 0) {
        throw new CliError("input", `No loan matches "${query}"${loans.length ? "" : " (the service keeps no loans)"}: \`knock loans\` lists them by id and title.`);
      }
      if (!flags.yes) {
        // Never wait for an answer that cannot come: without a terminal, refuse as a usage error.
        if (process.stdin.isTTY !== true) {
          const what = matches.length === 1 ? "a loan" : `${matches.length} loans`;
          throw new CliError("usage", `${flags.forget ? "Forgetting" : "Returning"} ${what} needs confirmation and there is no terminal to ask on: pass --yes.`);
        }
        for (const loan of matches) process.stderr.write(`  ${describe(loan)}\n`);
        const what = matches.length === 1 ? "this loan" : `these ${matches.length} loans`;
        const question = flags.forget ? `Forget ${what} without telling the library? [y/N] ` : `Return ${what} to the library? You can no longer read ${matches.length === 1 ? "it" : "them"}. [y/N] `;
        if (!(await confirm(question))) {
          // The user's answer, not a failure: exit 0, as `rm -i` does when told no.
          process.stderr.write("Nothing done.\n");
          return;
        }
      }
      const action = flags.forget ? "forgotten" : "returned";
      let failed = 0;
      for (const loan of matches) {
        let result: ReturnResult;
        try {
          if (flags.forget) await callService(conn, "DELETE", `/loans/${loan.id}`);
          else await callService(conn, "POST", `/loans/${loan.id}/return`);
          result = { id: loan.id, title: loan.title, action, ok: true };
          if (!flags.json) process.stdout.write(`${flags.forget ? "Forgot" : "Returned"} ${loan.id}  ${loan.title ?? ""}\n`);
        } catch (err) {
          if (!(err instanceof CliError) || FATAL.has(err.kind)) throw err;
          failed++;
          result = { id: loan.id, title: loan.title, action, ok: false, error_type: err.details.errorType, error: err.message, request_id: err.details.requestId };
          process.stderr.write(`knock: ${loan.id}: ${err.message}\n`);
        }
        if (flags.json) process.stdout.write(JSON.stringify(result) + "\n");
      }
      if (failed > 0) process.exitCode = EXIT_FAILED;
    });
}
