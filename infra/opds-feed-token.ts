import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { KnockConfig } from "../config";
import { ACCESS_TOKEN_BYTES, tokenFromHex, tokenHash } from "./access-token";

/** The OPDS feed's secret, as the stack keeps it. */
export interface OpdsFeedToken {
  /** 43 base64url characters (256 bits), the feed's path segment: a Pulumi secret. */
  readonly token: pulumi.Output<string>;
  /** Its SHA-256, hex: all the function is given (`OPDS_FEED_TOKEN_SHA256`). */
  readonly sha256: pulumi.Output<string>;
}

/**
 * The feed's own secret, in TOKEN and NONE mode (an e-reader app cannot sign SigV4, so AWS_IAM has
 * no feed). A RandomBytes of its own, never the access token: the feed's address opens the books,
 * not the service. Its `keepers` replace it when `opds_feed_token_version` changes (the random
 * provider regenerates a resource whose keepers change), which rotates the feed's address.
 */
export function createOpdsFeedToken(config: KnockConfig, opts?: pulumi.CustomResourceOptions): OpdsFeedToken | undefined {
  if (config.functionUrlAuth === "AWS_IAM") return undefined;
  const bytes = new random.RandomBytes("knock-opds-feed-token", {
    length: ACCESS_TOKEN_BYTES,
    keepers: { opds_feed_token_version: String(config.opdsFeedTokenVersion) },
  }, opts);
  return {
    token: pulumi.secret(bytes.hex.apply(tokenFromHex)),
    // As for the access token: the hash of 256 random bits opens nothing, so it stays readable.
    sha256: pulumi.unsecret(bytes.hex.apply((hex) => tokenHash(tokenFromHex(hex)))),
  };
}

/** The feed's address (`…/opds/<token>/`): secret, as it holds the token. The Function URL ends with `/`. */
export function opdsFeedUrl(functionUrl: pulumi.Input<string>, token: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.interpolate`${functionUrl}opds/${token}/`);
}
