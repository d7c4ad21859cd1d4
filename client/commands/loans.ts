import { Command } from "commander";
import { connect, withConnectionOptions, type ConnectionFlags } from "../lib/connection";
import { fetchLoans, loanTable } from "../lib/loans";
import { createReporter, terminalStyle } from "../lib/progress";

/** `knock loans`: the library loans the service fulfilled and still keeps. */
export function loansCommand(): Command {
  const command = new Command("loans").description("List the library loans the service fulfilled (id, title, end of the loan, status)");
  return withConnectionOptions(command)
    .option("--json", "print the service's answer ({loans, count}) as JSON on stdout")
    .addHelpText("after", "\nExamples:\n  $ npx knock loans\n  $ npx knock loans --url http://127.0.0.1:9000 --json\n")
    .action(async (opts: ConnectionFlags & { json?: boolean }) => {
      const reporter = createReporter(process.stderr, terminalStyle(process.stderr));
      const conn = await connect(opts, (line) => reporter.note(line));
      const list = await fetchLoans(conn);
      if (opts.json) {
        process.stdout.write(JSON.stringify(list) + "\n");
        return;
      }
      if (list.count === 0) {
        process.stdout.write("No loans: the service keeps a loan when it converts a library book.\n");
        return;
      }
      process.stdout.write(loanTable(list.loans));
      for (const loan of list.loans) if (loan.error !== undefined) reporter.note(`${loan.id}: ${loan.error} Forget it with \`knock return --forget ${loan.id}\`.`);
    });
}
