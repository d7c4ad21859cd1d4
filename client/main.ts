import { Command, CommanderError } from "commander";
import { convertCommand } from "./commands/convert";
import { deviceCommand } from "./commands/device";
import { healthCommand } from "./commands/health";
import { inspectCommand } from "./commands/inspect";
import { kindleTestCommand } from "./commands/kindle";
import { loansCommand } from "./commands/loans";
import { openCommand } from "./commands/open";
import { returnCommand } from "./commands/return";
import { serveCommand } from "./commands/serve";
import { CliError, EXIT_FAILED, EXIT_USAGE } from "./lib/failures";

/** Builds the `knock` program: argument parsing and dispatch only; each command lives in its own file. */
export function program(): Command {
  const knock = new Command("knock")
    .description("Convert Adobe ACSM files to EPUB/PDF with your knock-lambda service, or run that service locally")
    .option("--debug", "show stack traces of failures")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ npx knock convert book.acsm                     # service from `pulumi stack output function_url`\n" +
        "  $ npx knock serve --tools ./libgourou-tools       # the whole service on this machine\n" +
        "  $ npx knock convert --url http://127.0.0.1:9000 --out ~/Books *.acsm\n" +
        "  $ npx knock open                                  # the access link and a QR code for your phone\n",
    );
  for (const command of [convertCommand(), inspectCommand(), healthCommand(), serveCommand(), openCommand(), loansCommand(), returnCommand(), deviceCommand(), kindleTestCommand()]) {
    // Usage errors exit 2 (clig.dev; gh does the same), not commander's default 1.
    command.exitOverride().showHelpAfterError("(run with --help for usage)");
    knock.addCommand(command);
  }
  knock.exitOverride();
  return knock;
}

/** Entry point (client/bin/knock.js): runs the program and turns every failure into a message and an exit status. */
export async function main(argv: readonly string[]): Promise<void> {
  const debug = argv.includes("--debug");
  try {
    await program().parseAsync(argv as string[], { from: "user" });
  } catch (err) {
    process.exitCode = report(err, debug);
  }
}

function report(err: unknown, debug: boolean): number {
  if (err instanceof CommanderError) {
    // Commander already printed the message (or the help/version text).
    if (err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version") return 0;
    return EXIT_USAGE;
  }
  if (err instanceof CliError) {
    process.stderr.write(`knock: ${err.message}\n`);
    if (debug && err.cause instanceof Error) process.stderr.write(`${err.cause.stack}\n`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`knock: unexpected error: ${e.message}\n`);
  process.stderr.write(debug ? `${e.stack}\n` : "  Run again with --debug for details.\n");
  return EXIT_FAILED;
}
