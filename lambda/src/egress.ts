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
 *
 * Which of these happened is read from the proxy's own record, never from the tool's words: the
 * proxy's refusal of an http: destination reaches the tool as an answer "403 Forbidden", which the
 * tool prints exactly as it prints a distributor's 403 ("HTTP Error code 403"), and a refused
 * CONNECT (https:) as a failed connection. The record belongs to one call (one proxy per call, so
 * nothing carries over to the next request of a warm function), and within it to the run that
 * failed: libgourou stops a run at its first failed request, and no refusal is answered as a
 * failure the caller retries, so a run that met a refusal is the last of the call.
 */
export async function withEgress<T>(setup: ToolSetup, log: Logger, work: (toolEnv: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
  const proxy = await startEgressProxy(setup.policy, log);
  try {
    return await work(toolEnvironment({ ...setup.toolEnv?.(), ...proxyEnvironment(proxy.url) }));
  } catch (err) {
    // A tool that failed after the proxy refused one of its destinations failed because of it: its
    // 403 is then the proxy's, not the distributor's (DistributorRefused, or a loan return's
    // LoanReturnRefused with distributor_status 403, only without a refusal).
    const refusal = proxy.refused.at(-1);
    if (refusal !== undefined && err instanceof ServiceError && (err.statusCode >= 500 || err.details.distributor_status === 403)) {
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
