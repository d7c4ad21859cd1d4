import { Command } from "commander";
import { connect, type ConnectionFlags } from "../lib/connection";
import { CliError } from "../lib/failures";
import { call } from "../lib/http";
import { expectOk } from "../lib/service-answers";
import { createReporter, formatBytes, terminalStyle } from "../lib/progress";

/** `knock health`: the converter's version and the service's limits; exit 1 when unhealthy. */
export function healthCommand(): Command {
  return new Command("health")
    .description("Check that the service answers and its converter runs; print its version and limits")
    .option("--url <url>", "service address (default: $KNOCK_URL, else `pulumi stack output function_url`)")
    .option("--region <region>", "AWS region to sign for (default: the one in the Function URL)")
    .option("--profile <name>", "AWS profile for the credentials (default: $AWS_PROFILE)")
    .option("--token <token>", "access token of a TOKEN deployment (default: $KNOCK_TOKEN, else the stack's access_token output)")
    .option("--json", "print the service's health answer as JSON on stdout")
    .addHelpText("after", "\nExample:\n  $ npx knock health --url http://127.0.0.1:9000\n")
    .action(async (opts: ConnectionFlags & { json?: boolean }) => {
      const reporter = createReporter(process.stderr, terminalStyle(process.stderr));
      const conn = await connect(opts, (line) => reporter.note(line));
      const answer = await call({ method: "GET", url: conn.address.url, headers: { accept: "application/json" } }, conn.sign, {
        connectTo: conn.connectTo,
        idleTimeoutMs: 60_000,
      });
      let body: Record<string, unknown>;
      try {
        body = expectOk(answer, await conn.functionArn());
      } catch (err) {
        if (opts.json && err instanceof CliError && err.kind === "service") process.stdout.write(answer.body.toString("utf8").trim() + "\n");
        throw err;
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify(body) + "\n");
      } else {
        const converter = (body.converter ?? {}) as Record<string, unknown>;
        const limits = (body.limits ?? {}) as Record<string, unknown>;
        const lines = [
          `status: ${String(body.status)}`,
          // Every tool prints the same libgourou version line; show each distinct one once.
          `converter: ${[...new Set(Object.values(converter).map(String))].join("; ") || "unknown"}`,
          typeof limits.max_body_bytes === "number" ? `max request body: ${formatBytes(limits.max_body_bytes)}` : undefined,
          typeof limits.download_url_expiry_seconds === "number" ? `download links valid for: ${limits.download_url_expiry_seconds} s` : undefined,
        ].filter(Boolean);
        process.stdout.write(lines.join("\n") + "\n");
      }
      if (body.status !== "ok") throw new CliError("service", `The service reports status "${String(body.status)}".`);
    });
}
