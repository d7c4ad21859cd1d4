import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { KnockConfig } from "../config";

/** The access token of a TOKEN deployment, as the stack keeps it. */
export interface AccessToken {
  /** The token itself (43 base64url characters, 256 bits): a Pulumi secret, output `access_token`. */
  readonly token: pulumi.Output<string>;
  /** Its SHA-256, hex: all the function is given (`ACCESS_TOKEN_SHA256`). */
  readonly sha256: pulumi.Output<string>;
}

/** Bytes of randomness in the token: 256 bits, out of reach of guessing at any request rate. */
export const ACCESS_TOKEN_BYTES = 32;

/**
 * The token's text from the provider's bytes: base64url (RFC 4648 §5) without padding, so it needs
 * no escaping in a URL fragment or an Authorization header (RFC 6750's b64token allows it).
 */
export function tokenFromHex(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64url");
}

/** The hash the handler compares against: SHA-256 of the token's text, hex. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Generates the access token for `function_url_auth = TOKEN` (nothing in the other modes).
 * `random.RandomBytes` uses a cryptographic generator and marks its `base64`/`hex` outputs secret;
 * its `keepers` replace it when `access_token_version` changes, which is how the token is rotated.
 */
export function createAccessToken(config: KnockConfig, opts?: pulumi.CustomResourceOptions): AccessToken | undefined {
  if (config.functionUrlAuth !== "TOKEN") return undefined;
  const bytes = new random.RandomBytes("knock-access-token", {
    length: ACCESS_TOKEN_BYTES,
    keepers: { access_token_version: String(config.accessTokenVersion) },
  }, opts);
  const token = pulumi.secret(bytes.hex.apply(tokenFromHex));
  // The hash of a 256-bit random token reveals nothing usable, so it is left readable: the function's
  // configuration and `pulumi preview` show it, and only the token (a secret) opens the service.
  const sha256 = pulumi.unsecret(bytes.hex.apply((hex) => tokenHash(tokenFromHex(hex))));
  return { token, sha256 };
}

/** The access link: the service's address with the token in the fragment, which browsers never send. */
export function accessUrl(functionUrl: pulumi.Input<string>, token: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.interpolate`${functionUrl}#token=${token}`);
}
