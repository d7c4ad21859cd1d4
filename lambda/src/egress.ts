import { ForbiddenDestinationError, NetworkFailureError, ServiceError, ToolMissingError, UnreachableHostError } from "./errors";
import { proxyEnvironment, startEgressProxy, type EgressPolicy } from "./egress-proxy";
import type { Logger } from "./log";
import { toolEnvironment } from "./run-tool";

/** How the converter tools run: where they may connect and what they are told when they fail. */
export interface ToolSetup {
  /** The egress proxy's policy (the same address rule as `acsm_url`, applied where it connects). */
  readonly policy: EgressPolicy;
  /** Variables added to the tools' minimal environment (tests: the stand-in's settings). @default none */
  readonly toolEnv?: () => Readonly<Record<string, string>>;
  /** How a missing tool is explained. @default ToolMissingError's own message (the image's) */
  readonly missingToolMessage?: (tool: string) => string;
  /** How the pause between retries of a transient distributor failure is waited. @default setTimeout */
  readonly retrySleep?: (ms: number) => Promise<void>;
}

/**
 * Runs `work` with the tools' environment: minimal, with every connection going through the egress
 * proxy, which applies the same address policy as acsm_url to the address it actually connects to.
 * A tool's failure is then said as what caused it, keeping the tool's own error as the `cause`: a
 * destination the proxy refused, a host it could not reach, a tool that is missing.
 */
export async function withEgress<T>(setup: ToolSetup, log: Logger, work: (toolEnv: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
  const proxy = await startEgressProxy(setup.policy, log);
  try {
    return await work(toolEnvironment({ ...setup.toolEnv?.(), ...proxyEnvironment(proxy.url) }));
  } catch (err) {
    // A tool that failed after the proxy refused one of its destinations failed because of it.
    const refusal = proxy.refused[0];
    if (refusal !== undefined && err instanceof ServiceError && err.statusCode >= 500) {
      throw new ForbiddenDestinationError(refusal.host, refusal.reason, { cause: err });
    }
    // A tool that could not talk to a server cannot say which; the proxy it went through can.
    const unreached = proxy.unreachable[0];
    if (unreached !== undefined && err instanceof NetworkFailureError) throw new UnreachableHostError(unreached.host, unreached.reason, { cause: err });
    if (err instanceof ToolMissingError && setup.missingToolMessage !== undefined) {
      throw new ToolMissingError(err.tool, setup.missingToolMessage(err.tool), { cause: err });
    }
    throw err;
  } finally {
    await proxy.close();
  }
}
