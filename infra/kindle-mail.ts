import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { KindleConfig, KnockConfig } from "../config";
import { FUNCTION_ENV } from "../lambda/src/public";
import type { Statement } from "./iam";

/** What Send to Kindle adds to the function: its environment and its role's grants. */
export interface KindleMail {
  readonly environment: Readonly<Record<string, pulumi.Input<string>>>;
  readonly statements: readonly Statement[];
  /** The SSM parameter holding the SMTP URL (smtp transport only). */
  readonly smtpParameter?: aws.ssm.Parameter;
}

/**
 * Send to Kindle's resources, when `kindle_address` is set. The SMTP URL (it holds the password)
 * goes into one SSM SecureString parameter and nowhere else: the function is told the parameter's
 * name, and its role may read that one parameter. No `keyId`, so SSM encrypts it with the account's
 * AWS managed key `aws/ssm`, whose key policy already lets every IAM principal of the account
 * decrypt (SSM User Guide, "Restricting decryption of SecureString parameter values"): the role
 * needs no kms:Decrypt grant, and ssm:GetParameter on this one ARN is what limits who reads it.
 * @pulumi/aws 7 marks `value` a secret output too, so the state keeps it encrypted.
 * With SES the role may send only as the one verified identity.
 */
export function createKindleMail(config: KnockConfig, opts?: pulumi.CustomResourceOptions): KindleMail | undefined {
  const kindle: KindleConfig | undefined = config.kindle;
  if (kindle === undefined) return undefined;
  const environment = {
    [FUNCTION_ENV.kindleAddress]: kindle.address,
    [FUNCTION_ENV.kindleFrom]: kindle.from,
    [FUNCTION_ENV.kindleTransport]: kindle.transport,
  };
  if (kindle.transport === "smtp") {
    const smtpParameter = new aws.ssm.Parameter("knock-kindle-smtp-url", {
      name: `/${config.project}/${config.stack}/kindle-smtp-url`,
      type: "SecureString",
      value: kindle.smtpUrl,
      description: "The SMTP server (with its password) knock-lambda mails books to the Kindle through; read only by the function.",
    }, opts);
    return {
      environment: { ...environment, [FUNCTION_ENV.kindleSmtpParameter]: smtpParameter.name },
      statements: [{ sid: "ReadKindleSmtpUrl", actions: ["ssm:GetParameter"], resources: [smtpParameter.arn] }],
      smtpParameter,
    };
  }
  const account = aws.getCallerIdentityOutput({}, opts).accountId;
  const partition = aws.getPartitionOutput({}, opts).partition;
  const identityArn = pulumi.interpolate`arn:${partition}:ses:${config.region}:${account}:identity/${kindle.sesIdentity}`;
  return { environment, statements: [{ sid: "SendToKindleWithSes", actions: ["ses:SendEmail", "ses:SendRawEmail"], resources: [identityArn] }] };
}
