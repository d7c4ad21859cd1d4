import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { byName, installMocks, settled, type RecordedResource } from "./support/pulumi-mocks";

// The program under a non-default configuration: every value must reach the resource it configures.
let resources: RecordedResource[];
const optionsByName = new Map<string, pulumi.ResourceOptions>();

beforeAll(async () => {
  resources = await installMocks({
    stack: "Prod_EU",
    config: {
      "aws:region": "eu-west-1",
      "aws:profile": "books",
      "knock-lambda:function_url_auth": "NONE",
      "knock-lambda:lambda_architecture": "arm64",
      "knock-lambda:lambda_reserved_concurrency": "2",
      "knock-lambda:lambda_memory": "1024",
      "knock-lambda:lambda_timeout": "60",
      "knock-lambda:lambda_log_retention": "30",
      "knock-lambda:lambda_ephemeral_storage": "4096",
      "knock-lambda:output_bucket_lifecycle_days": "3",
      "knock-lambda:ecr_image_retention": "2",
      "knock-lambda:download_url_expiry_seconds": "600",
      "knock-lambda:codebuild_max_retries": "4",
      "knock-lambda:codebuild_retry_delay": "5",
      "knock-lambda:codebuild_timeout_minutes": "45",
    },
  });
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((args) => { optionsByName.set(args.name, args.opts); return undefined; });
    return { ...(await import("../index")) };
  });
  await settled(resources);
}, 60_000);

describe("non-default configuration", () => {
  it("names the repository in lower case, told apart from prod-eu's by a hash, and the function within Lambda's character set", () => {
    expect(byName(resources, "knock-repo").inputs.name).toBe("knock-lambda-prod-eu-8861505f");
    expect(byName(resources, "knock-lambda").inputs.name).toBe("knock-lambda-Prod_EU");
    expect(byName(resources, "knock-lambda-build").inputs.name).toBe("knock-lambda-build-Prod_EU");
  });

  it("sizes and limits the function as configured", () => {
    expect(byName(resources, "knock-lambda").inputs).toMatchObject({
      memorySize: 1024, timeout: 60, ephemeralStorage: { size: 4096 }, reservedConcurrentExecutions: 2, architectures: ["arm64"],
      environment: { variables: { DOWNLOAD_URL_EXPIRY_SECONDS: "600" } },
    });
    expect(byName(resources, "knock-lambda-logs").inputs.retentionInDays).toBe(30);
    expect(byName(resources, "knock-lambda-build-logs").inputs.retentionInDays).toBe(30);
  });

  it("builds an arm64 image on an ARM build host for an arm64 function", () => {
    const project = byName(resources, "knock-lambda-build");
    expect(project.inputs.environment).toMatchObject({
      type: "ARM_CONTAINER", image: "aws/codebuild/amazonlinux-aarch64-standard:3.0", computeType: "BUILD_GENERAL1_LARGE",
      environmentVariables: expect.arrayContaining([{ name: "AWS_DEFAULT_REGION", value: "eu-west-1" }]),
    });
    const buildspec = JSON.parse((project.inputs.source as { buildspec: string }).buildspec);
    expect(buildspec.env.variables.TARGET_PLATFORM).toBe("linux/arm64");
    expect(project.inputs.buildTimeout).toBe(50);
  });

  it("passes the retry and timeout settings to the build runner", () => {
    expect(byName(resources, "knock-lambda-build-run").inputs.environment).toMatchObject({
      AWS_REGION: "eu-west-1", AWS_PROFILE: "books", CODEBUILD_MAX_RETRIES: "4", CODEBUILD_RETRY_DELAY_SECONDS: "5", CODEBUILD_TIMEOUT_MINUTES: "45",
    });
  });

  it("keeps books and images as long as configured", () => {
    expect(byName(resources, "knock-output-bucket-lifecycle").inputs.rules).toEqual([expect.objectContaining({ expiration: { days: 3 } })]);
    const policy = JSON.parse(String(byName(resources, "knock-repo-lifecycle").inputs.policy));
    // The retention counts the app's own images only (test/registry-lifecycle.test.ts simulates why).
    expect(policy.rules.filter((r: { selection: { countType: string } }) => r.selection.countType === "imageCountMoreThan"))
      .toContainEqual(expect.objectContaining({ selection: expect.objectContaining({ tagStatus: "tagged", tagPatternList: ["build-*"], countNumber: 2 }) }));
    expect(policy.rules.some((r: { selection: { tagStatus: string } }) => r.selection.tagStatus === "any")).toBe(false);
  });

  it("opens the URL without auth only when asked, and replaces it when the auth type changes", () => {
    expect(byName(resources, "knock-lambda-url").inputs.authorizationType).toBe("NONE");
    // The provider adds the public-invoke permissions only when it creates a URL with auth NONE.
    expect(optionsByName.get("knock-lambda-url")).toMatchObject({ replaceOnChanges: ["authorizationType"], deleteBeforeReplace: true });
  });
});
