import type { Command } from "commander";
import { defaultCredentials, lambdaUrlSigner, signingRegion, unsigned, type RequestSigner } from "./aws-signing";
import { CliError } from "./failures";
import { connectToFromEnv, type ConnectTo } from "./http";
import { findServiceAddress, isLocalUrl, pulumiStackOutput, quietly, type ServiceAddress, type StackOutputReader } from "./service-address";

/** The flags every command that talks to the service takes. */
export interface ConnectionFlags {
  readonly url?: string;
  readonly region?: string;
  readonly profile?: string;
  /** The access token of a TOKEN deployment (or of `knock serve` on the network). */
  readonly token?: string;
}

/**
 * Adds the {@link ConnectionFlags} to a command that talks to the service: declared once, so every
 * such command takes the same four (a 401 tells the user to pass --token, whichever command it was).
 */
export function withConnectionOptions(command: Command): Command {
  return command
    .option("--url <url>", "service address (default: $KNOCK_URL, else `pulumi stack output function_url`)")
    .option("--region <region>", "AWS region to sign for (default: the one in the Function URL)")
    .option("--profile <name>", "AWS profile for the credentials (default: $AWS_PROFILE)")
    .option("--token <token>", "access token of a TOKEN deployment or a knock serve (default: $KNOCK_TOKEN, else the stack's access_token output)");
}

/** Sends the access token as `Authorization: Bearer` (RFC 6750 §2.1) instead of signing. */
export function bearer(token: string): RequestSigner {
  return async (request) => ({ ...request.headers, authorization: `Bearer ${token}` });
}

/**
 * The stack's access token, read only when the stack is in TOKEN mode and the address in use is its
 * Function URL: `access_token` is null in the other modes and `[secret]` without --show-secrets, so
 * the first look reveals nothing and the token is fetched only when there is one.
 */
async function stackToken(isStackAddress: () => Promise<boolean>, readOutput: StackOutputReader): Promise<string | undefined> {
  if (!(await isStackAddress())) return undefined;
  const masked = await readOutput("access_token");
  if (masked === undefined || masked === "null") return undefined;
  const token = await readOutput("access_token", { showSecrets: true });
  return token && token !== "null" ? token : undefined;
}

/** Everything needed to talk to the service: where it is, how to sign, where to connect. */
export interface Connection {
  readonly address: ServiceAddress;
  readonly sign: RequestSigner;
  readonly connectTo?: ConnectTo;
  /** The function's ARN for the IAM hint, when the Pulumi stack can tell. */
  functionArn(): Promise<string | undefined>;
}

/**
 * Finds the service and prepares signing: none for a local address (`knock serve`), SigV4 for
 * service `lambda` otherwise.
 */
export async function connect(flags: ConnectionFlags, note: (line: string) => void, stackOutput: StackOutputReader = pulumiStackOutput): Promise<Connection> {
  const address = await findServiceAddress(flags.url, process.env, stackOutput);
  if (address.warning) note(address.warning);
  // Past the address, the stack is only asked for extras (token, ARN): without the Pulumi CLI there are none.
  const readOutput = quietly(stackOutput);
  const local = isLocalUrl(address.url);
  // Whether the address is this project's stack's function_url: asked once (each stack output is a
  // run of the Pulumi CLI), and only when the token or the ARN is wanted.
  let sameStack: Promise<boolean> | undefined;
  const isStackAddress = (): Promise<boolean> =>
    (sameStack ??=
      address.source === "pulumi stack output function_url"
        ? Promise.resolve(true)
        : readOutput("function_url").then((url) => url !== undefined && URL.canParse(url) && new URL(url).host === address.url.host));
  let sign: RequestSigner = unsigned;
  let how = "unsigned (local address)";
  // A token replaces signing: in TOKEN mode the URL is public and Authorization carries the token.
  const given = flags.token ? "--token" : process.env.KNOCK_TOKEN?.trim() ? "KNOCK_TOKEN" : undefined;
  const token = flags.token || process.env.KNOCK_TOKEN?.trim() || (local ? undefined : await stackToken(isStackAddress, readOutput));
  if (token) {
    sign = bearer(token);
    how = `access token from ${given ?? "pulumi stack output access_token"}`;
  } else if (!local) {
    // A region that cannot be told is said when the first request is signed, which is after its
    // connection is open: a host that does not resolve or answer is the problem to report first.
    let region: string | undefined;
    let noRegion: CliError | undefined;
    try {
      region = signingRegion(address.url, flags.region);
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      noRegion = err;
    }
    sign = region === undefined ? () => Promise.reject(noRegion) : lambdaUrlSigner(region, defaultCredentials(flags.profile), flags.profile);
    how = `SigV4 lambda/${region ?? "(region unknown)"}${flags.profile ? `, profile ${flags.profile}` : ""}`;
  }
  note(`Service ${address.url.origin} (from ${address.source}; ${how})`);
  let arn: Promise<string | undefined> | undefined;
  return {
    address,
    sign,
    connectTo: connectToFromEnv(),
    // The function's ARN, for the IAM hint: only that of the stack whose URL this is.
    functionArn: () =>
      (arn ??= local ? Promise.resolve(undefined) : isStackAddress().then((same) => (same ? readOutput("lambda_function_arn") : undefined))),
  };
}
