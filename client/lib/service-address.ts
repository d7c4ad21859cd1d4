import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError } from "./failures";

/** The service's address and where it came from (printed, so the user knows which one is used). */
export interface ServiceAddress {
  /** The service's origin with path `/`: it answers at `/` and `/loans…`, never below another path. */
  readonly url: URL;
  readonly source: "--url" | "KNOCK_URL" | "pulumi stack output function_url";
  /** Set when the address given had a path, query or fragment, which were dropped: for stderr. */
  readonly warning?: string;
}

/** Where to get the Pulumi CLI (its documentation's install page). */
export const PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/install/";

/** The Pulumi CLI is not on PATH, so no stack output can be read. */
export class PulumiNotInstalledError extends Error {
  constructor() {
    super("pulumi is not installed (not found on PATH)");
    this.name = "PulumiNotInstalledError";
  }
}

/** The project root (where Pulumi.yaml is): the client ships inside the Pulumi project. */
export const PROJECT_ROOT = resolve(__dirname, "../..");

/**
 * Runs `pulumi stack output NAME` and returns its value, or undefined when the output is not there
 * (or the CLI failed: not logged in, no stack selected). Rejects with {@link PulumiNotInstalledError}
 * when there is no Pulumi CLI at all, so that callers who need the stack can say so. A secret output
 * reads as `[secret]` unless `showSecrets` is set.
 */
export type StackOutputReader = (name: string, options?: { readonly showSecrets?: boolean }) => Promise<string | undefined>;

/**
 * Reads a stack output with the Pulumi CLI, in the current folder when it holds a Pulumi project,
 * else in this project's root. Bounded in time: `pulumi` may wait on a backend login.
 */
export const pulumiStackOutput: StackOutputReader = (name, options) =>
  new Promise((done, fail) => {
    const cwd = existsSync(join(process.cwd(), "Pulumi.yaml")) ? process.cwd() : PROJECT_ROOT;
    execFile("pulumi", ["stack", "output", name, ...(options?.showSecrets ? ["--show-secrets"] : [])], { cwd, timeout: 30_000, windowsHide: true }, (err, stdout) => {
      if ((err as NodeJS.ErrnoException | null)?.code === "ENOENT") {
        fail(new PulumiNotInstalledError());
        return;
      }
      const value = stdout?.toString().trim();
      done(err || !value ? undefined : value);
    });
  });

/** The same reader, with a missing Pulumi CLI read as a missing output (for optional lookups). */
export function quietly(readOutput: StackOutputReader): StackOutputReader {
  return (name, options) => readOutput(name, options).catch((err: unknown) => (err instanceof PulumiNotInstalledError ? undefined : Promise.reject(err)));
}

/**
 * The service's address from a URL given by the user: its origin. A path, query or fragment would
 * be dropped anyway (the service answers at `/`; `knock health` used to send the path and print
 * another route's answer), so dropping them is said in a warning.
 */
export function serviceOrigin(text: string, source: string): { url: URL; warning?: string } {
  const given = parseServiceUrl(text, source);
  const url = new URL(`${given.origin}/`);
  if (given.href === url.href) return { url };
  // Never echo a password someone put in the URL.
  const extra = `${given.pathname === "/" ? "" : given.pathname}${given.search}${given.hash}` || "a user name or password";
  return { url, warning: `knock: warning: ${source} has ${extra} after the service's address, which the service does not use; using ${given.origin}` };
}

/** Parses and checks a service URL given by the user. */
export function parseServiceUrl(text: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new CliError("usage", `${source} is not a URL: "${text}". Expected e.g. https://<id>.lambda-url.<region>.on.aws/`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new CliError("usage", `${source} must be an http(s) URL, not ${url.protocol}`);
  }
  return url;
}

/**
 * Finds the service: `--url`, else `KNOCK_URL`, else the stack output `function_url` when the
 * Pulumi CLI is installed. Fails with what to do when none works.
 */
export async function findServiceAddress(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  readOutput: StackOutputReader = pulumiStackOutput,
): Promise<ServiceAddress> {
  if (flag) return { ...serviceOrigin(flag, "--url"), source: "--url" };
  if (env.KNOCK_URL?.trim()) return { ...serviceOrigin(env.KNOCK_URL, "KNOCK_URL"), source: "KNOCK_URL" };
  const local = "  To try it on this machine: `npx knock serve`, then `--url http://127.0.0.1:9000`.";
  let fromStack: string | undefined;
  try {
    fromStack = await readOutput("function_url");
  } catch (err) {
    if (!(err instanceof PulumiNotInstalledError)) throw err;
    throw new CliError(
      "no-service-url",
      `No service address: pass --url URL or set KNOCK_URL (reading the stack's function_url needs the Pulumi CLI, which is not installed: ${PULUMI_INSTALL_URL}).\n${local}`,
    );
  }
  if (fromStack) return { ...serviceOrigin(fromStack, "pulumi stack output function_url"), source: "pulumi stack output function_url" };
  throw new CliError(
    "no-service-url",
    `No service address: pass --url URL or set KNOCK_URL, or run where \`pulumi stack output function_url\` works (Pulumi CLI logged in, stack selected).\n${local}`,
  );
}

/** True for addresses on this machine, which `knock serve` answers without AWS signatures. */
export function isLocalUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The region of a Function URL (`<id>.lambda-url.<region>.on.aws`), or undefined for other hosts. */
export function regionOfFunctionUrl(url: URL): string | undefined {
  return /^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$/i.exec(url.hostname)?.[1]?.toLowerCase();
}
