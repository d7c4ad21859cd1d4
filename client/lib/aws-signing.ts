import { Sha256 } from "@aws-crypto/sha256-js";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { SignatureV4 } from "@smithy/signature-v4";
import { CliError } from "./failures";
import { regionOfFunctionUrl } from "./service-address";

/** Where credentials come from (the SDK's provider type, without depending on @smithy/types directly). */
export type CredentialsProvider = ReturnType<typeof fromNodeProviderChain>;
type Credentials = Awaited<ReturnType<CredentialsProvider>>;

/** A request about to be sent: what SigV4 signs. */
export interface OutgoingRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

/** Adds the signature headers to a request (or returns it unchanged for an unsigned service). */
export type RequestSigner = (request: OutgoingRequest) => Promise<Record<string, string>>;

/**
 * The region to sign for: `--region`, else the one in a Function URL's host name. A Function URL
 * is signed for the region it lives in whatever the caller's default region is.
 */
export function signingRegion(url: URL, flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const region = flag?.trim() || regionOfFunctionUrl(url) || env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim();
  if (!region) {
    throw new CliError("usage", `Cannot tell the AWS region of ${url.host}: pass --region (the region the function runs in).`);
  }
  return region;
}

/**
 * Credentials from the AWS SDK's default chain (environment, SSO, shared files, process, IMDS…),
 * with `--profile` standing in for AWS_PROFILE.
 */
export function defaultCredentials(profile: string | undefined): CredentialsProvider {
  return fromNodeProviderChain(profile ? { profile } : {});
}

async function loadCredentials(provider: CredentialsProvider, profile: string | undefined): Promise<Credentials> {
  const which = profile ? `profile "${profile}"` : process.env.AWS_PROFILE ? `profile "${process.env.AWS_PROFILE}"` : "the default chain";
  let creds: Credentials;
  try {
    creds = await provider();
  } catch (err) {
    const detail = err instanceof Error ? err.message.split("\n")[0] : String(err);
    const expired = /expired|refresh/i.test(detail);
    throw new CliError(
      expired ? "credentials-expired" : "credentials",
      `${expired ? "Your AWS credentials have expired" : "No AWS credentials found"} (${which}): ${detail}\n` +
        "  Sign in again (e.g. `aws sso login" + (profile ? ` --profile ${profile}` : "") + "`), or set AWS_PROFILE / --profile, " +
        "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
      {},
      { cause: err },
    );
  }
  if (creds.expiration !== undefined && creds.expiration.getTime() <= Date.now()) {
    throw new CliError(
      "credentials-expired",
      `Your AWS credentials (${which}) expired at ${creds.expiration.toISOString()}.\n  Sign in again (e.g. \`aws sso login\`) and retry.`,
    );
  }
  return creds;
}

/**
 * A signer for a Function URL with `AWS_IAM` auth: SigV4 for the service `lambda`, the SDK's own
 * signer and SHA-256. Lambda refuses unsigned payloads on Function URLs, so every request carries
 * `x-amz-content-sha256` with the body's hash, and that header is signed too.
 */
export function lambdaUrlSigner(region: string, credentials: CredentialsProvider, profile?: string): RequestSigner {
  let signer: SignatureV4 | undefined;
  return async (request) => {
    signer ??= new SignatureV4({ service: "lambda", region, credentials: await loadCredentials(credentials, profile), sha256: Sha256 });
    const signed = await signer.sign({
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      port: request.url.port ? Number(request.url.port) : undefined,
      path: request.url.pathname,
      query: Object.fromEntries(request.url.searchParams),
      // SigV4 signs the Host header as the client sends it (with a non-default port).
      headers: { ...request.headers, host: request.url.host },
      body: request.body ?? Buffer.alloc(0),
    });
    return signed.headers;
  };
}

/** The signer used for `knock serve` and other local addresses: adds nothing. */
export const unsigned: RequestSigner = async (request) => ({ ...request.headers });
