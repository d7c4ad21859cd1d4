import type { HandlerConfig } from "../config";
import type { DeviceManager } from "../device";
import type { ToolSetup } from "../egress";
import type { Resolver } from "../fetch-acsm";
import type { Loans } from "../loans";
import type { Logger } from "../log";
import type { OutputStore } from "../output-store";
import type { RouteParams } from "../contract";
import type { Health } from "./health";
import type { Kindle } from "../kindle/deliver";

/** What the use cases work with: built once per container (handler.ts), shared by its invocations. */
export interface Services {
  readonly config: HandlerConfig;
  readonly devices: DeviceManager;
  readonly output: OutputStore;
  readonly loans: Loans;
  readonly health: Health;
  /** How the converter tools run (egress proxy, environment, missing-tool wording). */
  readonly tools: ToolSetup;
  /** How an `acsm_url` is fetched. */
  readonly acsmUrl: { readonly resolver: Resolver; readonly isAllowedAddress?: (address: string) => boolean; readonly ca?: string | Buffer };
  readonly now: () => Date;
  /** Send to Kindle, when the stack set it up. */
  readonly kindle?: Kindle;
}

/** One invocation as a use case sees it. */
export interface Call {
  /** The Lambda event: a Function URL event, or a direct invocation's JSON request. */
  readonly event: unknown;
  /** The route path's `<name>` segments (`id` of `/loans/<id>`). */
  readonly params: RouteParams;
  readonly requestId: string;
  readonly log: Logger;
  /** When the invocation started (Date.now()). */
  readonly started: number;
  /** Milliseconds the next step may take: the invocation's time left less the safety margin. */
  readonly timeLeftMs: () => number;
  /** The invocation's own empty work directory (made on first use), removed after the answer whatever it was. */
  readonly workDir: () => Promise<string>;
}
