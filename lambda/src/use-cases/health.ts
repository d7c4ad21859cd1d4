import { join } from "node:path";
import type { HandlerConfig } from "../config";
import { MAX_BODY_BYTES, type HealthAnswer } from "../contract";
import { ConverterUnhealthyError } from "../errors";
import { runTool } from "../run-tool";
import type { Call } from "./context";

/** The tools health runs: acsmdownloader converts; adept_loan_mgt returns loans early (POST /loans/<id>/return). */
const CHECKED_TOOLS = ["acsmdownloader", "adept_loan_mgt"] as const;

/**
 * `GET /` asking for JSON: the service's health. Each checked tool's `-V` line is cached once it ran,
 * for as long as the container lives, so a warm health check runs nothing.
 */
export class Health {
  private readonly versions: Record<string, string> = {};

  constructor(
    private readonly config: Pick<HandlerConfig, "toolsDir" | "functionUrlAuth" | "downloadUrlExpirySeconds" | "kindle">,
    /** How a tool that is missing or does not run is explained. @default "The converter tool … is missing or does not run." */
    private readonly missingToolMessage?: (tool: string) => string,
  ) {}

  async check(call: Pick<Call, "log" | "timeLeftMs">): Promise<HealthAnswer> {
    for (const tool of CHECKED_TOOLS) {
      if (this.versions[tool] !== undefined) continue;
      const run = await runTool(join(this.config.toolsDir, tool), ["-V"], {
        timeoutMs: Math.min(5_000, call.timeLeftMs()),
        maxOutputBytes: 4096,
      }).catch(() => undefined);
      if (run === undefined || run.exitCode !== 0) {
        call.log.error("health check: converter not runnable", { tool });
        throw new ConverterUnhealthyError(tool, this.missingToolMessage?.(tool));
      }
      this.versions[tool] = run.output.trim().split("\n")[0].trim();
    }
    return {
      status: "ok",
      service: "knock-lambda",
      auth: this.config.functionUrlAuth,
      converter: { ...this.versions },
      limits: { max_body_bytes: MAX_BODY_BYTES, download_url_expiry_seconds: this.config.downloadUrlExpirySeconds },
      send_to_kindle: this.config.kindle !== undefined,
    };
  }
}
