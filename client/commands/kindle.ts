import { Command } from "commander";
import type { KindleAnswer } from "../../lambda/src/public";
import { connect, withConnectionOptions, type ConnectionFlags } from "../lib/connection";
import { CliError } from "../lib/failures";
import { call } from "../lib/http";
import { expectOk } from "../lib/service-answers";
import { createReporter, terminalStyle } from "../lib/progress";

/**
 * `knock kindle-test`: has the service mail a one-page test document to its Kindle, through the
 * same path as a book (the stack's SMTP server or SES, the approved sender, the Kindle address), so
 * the set-up can be checked end to end before a real book depends on it.
 */
export function kindleTestCommand(): Command {
  const command = new Command("kindle-test").description("Have the service send a small test document to its Kindle address (checks the Send to Kindle set-up)");
  return withConnectionOptions(command)
    .option("--json", "print the service's answer as JSON on stdout")
    .addHelpText("after", "\nExample:\n  $ npx knock kindle-test   # then look on the Kindle for \"knock-lambda test document\"\n")
    .action(async (opts: ConnectionFlags & { json?: boolean }) => {
      const reporter = createReporter(process.stderr, terminalStyle(process.stderr));
      const conn = await connect(opts, (line) => reporter.note(line));
      const answer = await call(
        { method: "POST", url: new URL("kindle", conn.address.url), headers: { "content-type": "application/json", accept: "application/json" }, body: Buffer.from(JSON.stringify({ test: true })) },
        conn.sign,
        { connectTo: conn.connectTo, idleTimeoutMs: 120_000 },
      );
      const body = expectOk(answer, await conn.functionArn()) as unknown as KindleAnswer;
      if (body.kindle?.sent !== true) throw new CliError("service", `${conn.address.url.origin} answered, but not with a Send to Kindle answer: check that the address is the service's.`);
      if (opts.json) {
        process.stdout.write(JSON.stringify(body) + "\n");
        return;
      }
      process.stdout.write(
        `sent "${body.kindle.attachment_name}" to ${body.kindle.to} via ${body.kindle.transport} (message ${body.kindle.message_id})\n` +
          "Amazon sends no receipt: the document should appear on the Kindle within a few minutes. If it does not, look in the\n" +
          "sender's inbox for Amazon's failure notice, and check that the sender is on your Approved Personal Document E-mail List.\n",
      );
    });
}
