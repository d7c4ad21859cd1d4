import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError } from "./failures";

/** The service's address and where it came from (printed, so the user knows which one is used). */
export interface ServiceAddress {
  readonly url: URL;
  readonly source: "--url" | "KNOCK_URL" | "pulumi stack output function_url";
}

/** The project root (where Pulumi.yaml is): the client ships inside the Pulumi project. */
export const PROJECT_ROOT = resolve(__dirname, "../..");

/**
 * Runs `pulumi stack output NAME` and returns its value, or undefined when the CLI or the output is
 * not there. A secret output reads as `[secret]` unless `showSecrets` is set.
 */
export type StackOutputReader = (name: string, options?: { readonly showSecrets?: boolean }) => Promise<string | undefined>;

/**
 * Reads a stack output with the Pulumi CLI, in the current folder when it holds a Pulumi project,
 * else in this project's root. Bounded in time: `pulumi` may wait on a backend login.
 */
export const pulumiStackOutput: StackOutputReader = (name, options) =>
  new Promise((done) => {
    const cwd = existsSync(join(process.cwd(), "Pulumi.yaml")) ? process.cwd() : PROJECT_ROOT;
    execFile("pulumi", ["stack", "output", name, ...(options?.showSecrets ? ["--show-secrets"] : [])], { cwd, timeout: 30_000, windowsHide: true }, (err, stdout) => {
      const value = stdout?.toString().trim();
      done(err || !value ? undefined : value);
    });
  });

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
  if (flag) return { url: parseServiceUrl(flag, "--url"), source: "--url" };
  if (env.KNOCK_URL?.trim()) return { url: parseServiceUrl(env.KNOCK_URL, "KNOCK_URL"), source: "KNOCK_URL" };
  const fromStack = await readOutput("function_url");
  if (fromStack) return { url: parseServiceUrl(fromStack, "pulumi stack output function_url"), source: "pulumi stack output function_url" };
  throw new CliError(
    "no-service-url",
    "No service address: pass --url URL or set KNOCK_URL, or run where `pulumi stack output function_url` works (Pulumi CLI logged in, stack selected).\n" +
      "  To try it on this machine: `npx knock serve`, then `--url http://127.0.0.1:9000`.",
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
