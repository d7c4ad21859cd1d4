// The account's concurrent-build quota: which Service Quotas quota applies to the project, and the
// message for a StartBuild that CodeBuild refused because of an account limit.

import { BatchGetProjectsCommand } from "@aws-sdk/client-codebuild";

import type { RunnerDeps } from "./deps";
import { describeError, errorMessage, errorName } from "./errors";
import type { EnvironmentType, RunnerOptions } from "./options";

/** A Service Quotas quota on concurrently running CodeBuild builds. */
export interface ConcurrentBuildQuota {
  /** Its name in Service Quotas, e.g. `Concurrently running builds for Linux/Medium environment`. */
  readonly name: string;
  /** The `<platform>/<size>` the quota is for, e.g. `Linux/Medium`. */
  readonly environment: string;
  /** Its quota code, where public sources agree on it. */
  readonly code?: string;
}

// Service Quotas names one concurrent-build quota per platform and size, "Concurrently running builds
// for <platform>/<size> environment" (CodeBuild User Guide, "Quotas for AWS CodeBuild").
const QUOTA_PLATFORMS: Readonly<Record<EnvironmentType, string>> = { LINUX_CONTAINER: "Linux", ARM_CONTAINER: "ARM" };
const QUOTA_SIZES: Readonly<Record<string, string>> = {
  BUILD_GENERAL1_SMALL: "Small",
  BUILD_GENERAL1_MEDIUM: "Medium",
  BUILD_GENERAL1_LARGE: "Large",
  BUILD_GENERAL1_XLARGE: "XLarge",
  BUILD_GENERAL1_2XLARGE: "2XLarge",
};
// AWS's quotas page lists names, not codes. These codes are the ones at least two public sources give
// for the same name: AWS's Landing Zone Accelerator (L-2DC20C30 Linux/Medium, L-4DDC4A99 Linux/Large;
// its issue 361), an AWS workshop (L-9D07B6EF Linux/Small) and published `list-service-quotas`
// listings. ARM/Medium, ARM/XLarge and ARM/2XLarge have a single source, so the runner tells the user
// how to look their code up instead of printing one that may be wrong.
const QUOTA_CODES: Readonly<Record<string, string>> = {
  "Linux/Small": "L-9D07B6EF",
  "Linux/Medium": "L-2DC20C30",
  "Linux/Large": "L-4DDC4A99",
  "Linux/XLarge": "L-04E5CA62",
  "Linux/2XLarge": "L-0397D009",
  "ARM/Small": "L-5ED1D25B",
  "ARM/Large": "L-596BEAB4",
};

/**
 * The concurrent-build quota that applies to a project, from its environment type and compute type.
 *
 * @returns undefined when either is unknown, or the compute type has no `<platform>/<size>` quota the
 *   runner knows (e.g. Lambda compute, reserved fleets).
 */
export function concurrentBuildQuota(environmentType?: string, computeType?: string): ConcurrentBuildQuota | undefined {
  const platform = QUOTA_PLATFORMS[environmentType as EnvironmentType] as string | undefined;
  const size = computeType === undefined ? undefined : QUOTA_SIZES[computeType];
  if (platform === undefined || size === undefined) return undefined;
  const key = `${platform}/${size}`;
  const code = QUOTA_CODES[key];
  return { name: `Concurrently running builds for ${key} environment`, environment: key, ...(code ? { code } : {}) };
}

interface BuildEnvironment {
  readonly environmentType?: string;
  readonly computeType?: string;
}

/** The project's environment: from the runner's variables, else from the project itself; never throws. */
async function projectEnvironment(options: RunnerOptions, deps: RunnerDeps): Promise<BuildEnvironment> {
  if (options.environmentType && options.computeType) return options;
  try {
    // The deployer can read the project: the Pulumi AWS provider reads it the same way.
    const got = await deps.codebuild.send(new BatchGetProjectsCommand({ names: [options.projectName] }));
    const environment = got.projects?.find((p) => p.name === options.projectName)?.environment;
    return {
      environmentType: options.environmentType ?? environment?.type,
      computeType: options.computeType ?? environment?.computeType,
    };
  } catch {
    return options;
  }
}

/**
 * The message for a StartBuild that CodeBuild refused with AccountLimitExceededException, or undefined
 * for any other error.
 *
 * CodeBuild answers `Cannot have more than N builds in queue for the account` (also seen as "N active
 * builds"). N is 0 when the account's concurrent-build quota for the compute type is 0, as it often is
 * on new accounts (reported e.g. in aws-ia/terraform-aws-control_tower_account_factory issues 100 and
 * 179): no build can ever start until the quota is raised. With N > 0 the slots exist but other builds
 * hold them all (a project without its own concurrency limit may queue five times the quota; CodeBuild
 * User Guide, "Builds in AWS CodeBuild").
 */
export async function accountLimitMessage(err: unknown, options: RunnerOptions, deps: RunnerDeps): Promise<string | undefined> {
  if (errorName(err) !== "AccountLimitExceededException") return undefined;
  const { environmentType, computeType } = await projectEnvironment(options, deps);
  const quota = concurrentBuildQuota(environmentType, computeType);
  const region = options.region;
  const subject = quota
    ? `for ${quota.environment} (${computeType} on ${environmentType})`
    : "for this project's compute type";
  const quotaName = quota
    ? `"${quota.name}"`
    : `the "Concurrently running builds for <Linux|ARM>/<size> environment" quota that matches codebuild_compute_type and lambda_architecture`;
  const cli = quota?.code
    ? `aws service-quotas request-service-quota-increase --region ${region} --service-code codebuild --quota-code ${quota.code} --desired-value 2`
    : `aws service-quotas list-service-quotas --region ${region} --service-code codebuild (to find its quota code), then aws service-quotas request-service-quota-increase --region ${region} --service-code codebuild --quota-code <code> --desired-value 2`;
  const nothingDeployed = "No build ran and nothing was deployed (the function was not created or changed)";

  const limit = /Cannot have more than (\d+) (?:active )?builds?/i.exec(errorMessage(err));
  if (limit?.[1] === "0") {
    return (
      `CodeBuild will not start any build of ${options.projectName}: ${describeError(err)}. ` +
      `This AWS account's quota of concurrently running CodeBuild builds ${subject} is 0 in ${region}, as it often is on new accounts. ` +
      `Raise it in the Service Quotas console (AWS services → AWS CodeBuild → ${quotaName} → Request increase at account level; ` +
      `2 is plenty, this stack runs one build at a time) or with: ${cli}. ` +
      `If the quota already shows more than 0, ask AWS Support to lift the account's CodeBuild limit. ` +
      `${nothingDeployed}; run pulumi up again once the increase is approved.`
    );
  }
  if (limit) {
    return (
      `CodeBuild will not queue another build of ${options.projectName}: ${describeError(err)}. ` +
      `Other builds in this account hold every slot of its concurrent-build quota ${subject} in ${region}. ` +
      `Wait for them to finish, or stop the ones you do not need (CodeBuild console → Build history), then run pulumi up again; ` +
      `to run more at once, raise ${quotaName} in Service Quotas (AWS services → AWS CodeBuild). ${nothingDeployed}.`
    );
  }
  return (
    `CodeBuild refused to start a build of ${options.projectName} because of an account limit: ${describeError(err)}. ` +
    `If it is about builds, it is the account's concurrent-build quota ${subject} in ${region}: raise ${quotaName} ` +
    `in Service Quotas (AWS services → AWS CodeBuild), or with: ${cli}. ${nothingDeployed}.`
  );
}
