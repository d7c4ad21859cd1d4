import { Command } from "commander";
import { connect, withConnectionOptions, type ConnectionFlags } from "../lib/connection";
import { CliError } from "../lib/failures";
import { call } from "../lib/http";
import { expectOk } from "../lib/service-answers";
import { createReporter, terminalStyle } from "../lib/progress";

/**
 * A byte limit as the docs state it: `256 KiB (262144 bytes)`. Binary units, as the limit is set
 * (256 × 1024); the decimal "262 KB" that book sizes use would not match any documented number.
 */
export function formatLimit(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB (${bytes} bytes)` : `${bytes} bytes`;
}

/** `knock health`: the converter's version and the service's limits; exit 1 when unhealthy. */
export function healthCommand(): Command {
  const command = new Command("health").description("Check that the service answers and its converter runs; print its version and limits");
  return withConnectionOptions(command)
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
      // Any JSON with a 200 is not enough: another server (or another route) would print "status: undefined".
      if (typeof body.status !== "string") {
        throw new CliError(
          "service",
          `${conn.address.url.origin} answered, but not with a knock-lambda health answer (it has no "status"): check that the address is the service's.`,
        );
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify(body) + "\n");
      } else {
        const converter = (body.converter ?? {}) as Record<string, unknown>;
        const limits = (body.limits ?? {}) as Record<string, unknown>;
        const lines = [
          `status: ${body.status}`,
          // Every tool prints the same libgourou version line; show each distinct one once.
          `converter: ${[...new Set(Object.values(converter).map(String))].join("; ") || "unknown"}`,
          typeof limits.max_body_bytes === "number" ? `max request body: ${formatLimit(limits.max_body_bytes)}` : undefined,
          typeof limits.download_url_expiry_seconds === "number" ? `download links valid for: ${limits.download_url_expiry_seconds} s` : undefined,
        ].filter(Boolean);
        process.stdout.write(lines.join("\n") + "\n");
      }
      if (body.status !== "ok") throw new CliError("service", `The service reports status "${body.status}" instead of "ok"; \`knock health --json\` prints its whole answer.`);
    });
}
