import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import * as path from "node:path";
import type { KnockConfig } from "../config";
import { SETTINGS } from "../lambda/src/public";
import { createBuildContextArchive } from "./build-context";
import { parseRunnerOutput } from "./runner-output";
import { createBuildspec, renderBuildspec } from "./buildspec";
import { createLifecyclePolicy } from "./registry-lifecycle";
import { assumableBy, policyJson } from "./iam";
import { buildLogGroupName, buildProjectName, repositoryName } from "./naming";

/** Where the Pulumi program lives: the build context and the runner are found relative to it. */
export const PROJECT_ROOT = path.resolve(__dirname, "..");

/** Object key of the zipped build context in the source bucket. */
export const SOURCE_KEY = "source.zip";

/** Everything the rest of the stack needs from the image build. */
export interface ImagePipeline {
  readonly repository: aws.ecr.Repository;
  /** Where CodeBuild writes the build logs, with the stack's retention. */
  readonly buildLogGroup: aws.cloudwatch.LogGroup;
  readonly buildProject: aws.codebuild.Project;
  /** The command that runs the build; its stdout carries the build id and the pushed digest. */
  readonly buildRun: command.local.Command;
  /** `<repository url>@sha256:…` — the exact image the build pushed, never a mutable tag. */
  readonly imageUri: pulumi.Output<string>;
  /** The CodeBuild build id of the run that produced {@link imageUri}. */
  readonly buildId: pulumi.Output<string>;
}

export interface ImagePipelineArgs {
  /** Bucket that receives `source.zip`. */
  readonly sourceBucket: aws.s3.Bucket;
  /** Folder holding `lambda/` and `infra/build-runner.ts`. @default the folder of this program */
  readonly projectRoot?: string;
}

/**
 * ECR repository, the zipped build context, the CodeBuild project that turns it into an image, and
 * the command that runs that project on every change of the build context (and only then).
 */
export function createImagePipeline(config: KnockConfig, args: ImagePipelineArgs, opts?: pulumi.CustomResourceOptions): ImagePipeline {
  const repository = new aws.ecr.Repository("knock-repo", {
    name: repositoryName(config.project, config.stack),
    imageScanningConfiguration: { scanOnPush: true },
    forceDelete: true,
  }, opts);

  new aws.ecr.LifecyclePolicy("knock-repo-lifecycle", {
    repository: repository.name,
    // Counts only the app's own images (build-*): an all-images count would include the BuildKit
    // cache manifests and could expire the image the function runs (infra/registry-lifecycle.ts).
    policy: JSON.stringify(createLifecyclePolicy(config.ecrImageRetention)),
  }, opts);

  // The archive's SHA-256 is the build trigger: the original keyed rebuilds on the version id of an
  // unversioned object (always empty), so source changes never rebuilt the image.
  const projectRoot = args.projectRoot ?? PROJECT_ROOT;
  const archive = pulumi.output(createBuildContextArchive({ projectRoot }));
  const sourceObject = new aws.s3.BucketObjectv2("source-code", {
    bucket: args.sourceBucket.id,
    key: SOURCE_KEY,
    source: archive.apply((a) => new pulumi.asset.FileAsset(a.path)),
    contentType: "application/zip",
  }, opts);

  const projectName = buildProjectName(config.stack, config.project);
  // Left to itself, CodeBuild creates /aws/codebuild/<project> on the first build, keeps it forever
  // and `pulumi destroy` leaves it behind. Owned by the stack, it has a retention and goes with it.
  const buildLogGroup = new aws.cloudwatch.LogGroup("knock-lambda-build-logs", {
    name: buildLogGroupName(projectName),
    retentionInDays: config.lambdaLogRetention,
  }, opts);

  const buildRole = new aws.iam.Role("codebuild-role", { assumeRolePolicy: assumableBy("codebuild.amazonaws.com") }, opts);
  const buildPolicy = new aws.iam.RolePolicy("codebuild-policy", {
    role: buildRole.id,
    policy: policyJson([
      // CodeBuild writes the build log to the stack's group and nowhere else; the group already
      // exists, so it needs no logs:CreateLogGroup.
      { sid: "WriteOwnBuildLogs", actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [buildLogGroup.arn, pulumi.interpolate`${buildLogGroup.arn}:*`] },
      // `docker login` needs a registry token; this action has no resource-level permissions.
      { sid: "GetRegistryToken", actions: ["ecr:GetAuthorizationToken"], resources: ["*"] },
      // The build logs in to ECR Public too, so that pulling BuildKit and the base images counts
      // against an authenticated pull quota, not the anonymous one CodeBuild's shared addresses
      // exhaust. ECR Public's token needs both actions, and neither has resource-level permissions.
      { sid: "GetPublicRegistryToken", actions: ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"], resources: ["*"] },
      // Push the image and read/write the layer cache — in this one repository only (the original
      // could even create repositories anywhere).
      {
        sid: "PushToThisRepository",
        actions: [
          "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
          "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
        ],
        resources: [repository.arn],
      },
      // Download the build context, and only it.
      { sid: "ReadBuildContext", actions: ["s3:GetObject", "s3:GetObjectVersion"], resources: [pulumi.interpolate`${args.sourceBucket.arn}/${SOURCE_KEY}`] },
      // CodeBuild checks the source bucket's location and ownership before it downloads from it.
      { sid: "LocateSourceBucket", actions: ["s3:GetBucketLocation", "s3:GetBucketAcl"], resources: [args.sourceBucket.arn] },
    ]),
  }, opts);

  const buildspec = renderBuildspec(createBuildspec(config.lambdaArchitecture));
  const arm = config.lambdaArchitecture === "arm64";
  const buildProject = new aws.codebuild.Project("knock-lambda-build", {
    name: projectName,
    serviceRole: buildRole.arn,
    artifacts: { type: "NO_ARTIFACTS" },
    environment: {
      type: arm ? "ARM_CONTAINER" : "LINUX_CONTAINER",
      computeType: config.codebuildComputeType,
      image: config.codebuildImage,
      // Docker-in-Docker needs privileged mode.
      privilegedMode: true,
      environmentVariables: [
        { name: "ECR_REPOSITORY_URI", value: repository.repositoryUrl },
        { name: "AWS_DEFAULT_REGION", value: config.region },
        // Passed on as --build-arg, so a mirror can stand in for libgourou's forge (see SOURCE_BUILD_ARGS).
        { name: "LIBGOUROU_REPO", value: config.libgourouRepository },
        { name: "UPDFPARSER_REPO", value: config.updfparserRepository },
      ],
    },
    // Naming the group here also makes the project (and so every build) wait until the group exists,
    // so CodeBuild never creates it first.
    logsConfig: { cloudwatchLogs: { status: "ENABLED", groupName: buildLogGroup.name } },
    source: {
      type: "S3",
      location: pulumi.interpolate`${args.sourceBucket.id}/${SOURCE_KEY}`,
      buildspec,
    },
    // CodeBuild's own limit sits just above the runner's, so the runner's clearer timeout fires first.
    buildTimeout: config.codebuildTimeoutMinutes + 5,
  }, opts);

  const buildRun = new command.local.Command("knock-lambda-build-run", {
    // No shell line: node runs the TypeScript runner directly and every parameter travels in the
    // environment, so nothing is spliced into a command string.
    interpreter: ["node", "--import", "tsx"],
    create: "infra/build-runner.ts",
    dir: projectRoot,
    environment: {
      CODEBUILD_PROJECT_NAME: buildProject.name,
      AWS_REGION: config.region,
      // The stack's settings, under the variable names the settings table gives them.
      [SETTINGS.codebuild_max_retries.env]: String(config.codebuildMaxRetries),
      [SETTINGS.codebuild_retry_delay.env]: String(config.codebuildRetryDelay),
      [SETTINGS.codebuild_timeout_minutes.env]: String(config.codebuildTimeoutMinutes),
      BUILD_CONTEXT_SHA256: archive.sha256,
      // Only to name the account's concurrent-build quota when CodeBuild refuses to start a build.
      CODEBUILD_COMPUTE_TYPE: config.codebuildComputeType,
      CODEBUILD_ENVIRONMENT_TYPE: arm ? "ARM_CONTAINER" : "LINUX_CONTAINER",
      // The runner uses the SDK's credential chain; with `aws:profile` set, the provider and the runner
      // must act as the same identity.
      ...(config.awsProfile === undefined ? {} : { AWS_PROFILE: config.awsProfile }),
    },
    // A new build when what goes into the image changes: the build context, or the build
    // instructions (which include the target platform) — or where it goes: a repository that was
    // replaced (renamed) holds none of the old images, so the digest must be pushed there anew. The
    // provider also re-runs `create` when any other input changes (the runner's settings above,
    // `dir`); `ignoreChanges` is no way out, as it would pin those settings to their first values for good.
    triggers: [archive.sha256, sha256(buildspec), repository.repositoryUrl],
    addPreviousOutputInEnv: false,
  }, {
    ...opts,
    // The build reads the uploaded object and runs with the role's permissions; neither hands data to the command.
    dependsOn: [sourceObject, buildPolicy],
  });

  const result = buildRun.stdout.apply(parseRunnerOutput);
  return {
    repository,
    buildLogGroup,
    buildProject,
    buildRun,
    imageUri: pulumi.interpolate`${repository.repositoryUrl}@${result.digest}`,
    buildId: result.buildId,
  };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
