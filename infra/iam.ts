import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/** One `Allow` statement. The Sid names its purpose, so the policy reads the same in the AWS console. */
export interface Statement {
  readonly sid: string;
  readonly actions: readonly string[];
  readonly resources: readonly pulumi.Input<string>[];
}

/** Serializes statements once into the policy JSON IAM expects. */
export function policyJson(statements: readonly Statement[]): pulumi.Output<string> {
  const document: aws.iam.PolicyDocument = {
    Version: "2012-10-17",
    Statement: statements.map((s) => ({ Sid: s.sid, Effect: "Allow", Action: [...s.actions], Resource: [...s.resources] })),
  };
  return pulumi.jsonStringify(document);
}

/** Trust policy letting one AWS service assume a role. */
export function assumableBy(service: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { Service: service }, Action: "sts:AssumeRole" }],
  });
}
