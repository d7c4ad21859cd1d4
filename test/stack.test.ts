import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { createLifecyclePolicy } from "../infra/registry-lifecycle";
import { corsMethods, DEVICE_OBJECT_KEY, outputKey } from "../lambda/src/public";
import {
  ACCOUNT_ID, FAKE_BUILD_ID, FAKE_DIGEST, REGION, byName, installMocks, policyOf, settled, valueOf,
  type RecordedResource,
} from "./support/pulumi-mocks";

// The whole program, evaluated once under mocks with default configuration, the way `pulumi up` runs it.
let resources: RecordedResource[];
let outputs: Record<string, unknown>;
const dependsOnByName = new Map<string, string[]>();

beforeAll(async () => {
  resources = await installMocks();
  outputs = (await pulumi.runtime.runInPulumiStack(async () => {
    // Records explicit dependsOn edges (the mocks only see inputs, not resource options).
    pulumi.runtime.registerStackTransformation((args) => {
      const deps = args.opts.dependsOn;
      const list = deps === undefined ? [] : Array.isArray(deps) ? deps : [deps];
      dependsOnByName.set(args.name, list.map((d) => (d as pulumi.Resource & { __name?: string }).__name ?? "?"));
      return undefined;
    });
    const program = await import("../index");
    return { ...program };
  })) as Record<string, unknown>;
  await settled(resources);
}, 60_000);

const repoUrl = `${ACCOUNT_ID}.dkr.ecr.${REGION}.amazonaws.com/knock-lambda-dev`;

describe("resources and their logical names", () => {
  it("registers every resource of the design with the original's logical names", () => {
    const names = resources.map((r) => r.name);
    for (const expected of [
      "knock-repo", "knock-repo-lifecycle", "knock-source-bucket", "source-code", "knock-output-bucket",
      "knock-output-bucket-lifecycle", "codebuild-role", "codebuild-policy", "knock-lambda-build",
      "knock-lambda-build-run", "knock-lambda-role", "knock-lambda-policy", "knock-lambda-s3-policy",
      "knock-lambda-logs", "knock-lambda", "knock-lambda-url", "knock-device-bucket", "knock-lambda-build-logs",
    ]) {
      expect(names).toContain(expected);
    }
    expect(new Set(names).size).toBe(names.length);
  });

  it("lets Pulumi auto-name every bucket so two deployers of knock-lambda/dev do not collide", () => {
    const buckets = resources.filter((r) => r.type === "aws:s3/bucket:Bucket");
    expect(buckets.map((b) => b.name).sort()).toEqual(["knock-device-bucket", "knock-output-bucket", "knock-source-bucket"]);
    for (const bucket of buckets) {
      expect(bucket.inputs.bucket).toBeUndefined();
      expect(bucket.inputs.forceDestroy).toBe(true);
    }
  });
});

describe("storage", () => {
  it("blocks all public access on every bucket", () => {
    for (const name of ["knock-source-bucket", "knock-output-bucket", "knock-device-bucket"]) {
      const block = byName(resources, `${name}-public-access`);
      expect(block.inputs).toMatchObject({
        bucket: `${name}-a1b2c3d`, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true,
      });
    }
  });

  it("denies every non-TLS request on every bucket and its objects", () => {
    for (const name of ["knock-source-bucket", "knock-output-bucket", "knock-device-bucket"]) {
      const [statement] = policyOf(byName(resources, `${name}-tls-only`)).Statement;
      expect(statement).toMatchObject({
        Effect: "Deny", Principal: "*", Action: "s3:*",
        Resource: [`arn:aws:s3:::${name}-a1b2c3d`, `arn:aws:s3:::${name}-a1b2c3d/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      });
    }
  });

  it("changes each bucket's policy only after its public-access block (S3 aborts concurrent changes)", () => {
    for (const name of ["knock-source-bucket", "knock-output-bucket", "knock-device-bucket"]) {
      expect(dependsOnByName.get(`${name}-tls-only`)).toEqual([`${name}-public-access`]);
    }
  });

  it("expires converted books after one day and aborts abandoned multipart uploads", () => {
    const lifecycle = byName(resources, "knock-output-bucket-lifecycle");
    expect(lifecycle.inputs.bucket).toBe("knock-output-bucket-a1b2c3d");
    expect(lifecycle.inputs.rules).toEqual([expect.objectContaining({
      status: "Enabled", expiration: { days: 1 }, abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
    })]);
  });

  it("versions the device bucket and never expires it", () => {
    expect(byName(resources, "knock-device-bucket-versioning").inputs).toMatchObject({
      bucket: "knock-device-bucket-a1b2c3d", versioningConfiguration: { status: "Enabled" },
    });
    const lifecycles = resources.filter((r) => r.type === "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration");
    expect(lifecycles.map((l) => l.inputs.bucket)).toEqual(["knock-output-bucket-a1b2c3d"]);
  });
});

describe("registry and build", () => {
  it("names the repository <project>-<stack>, scans on push and can be deleted with its images", () => {
    expect(byName(resources, "knock-repo").inputs).toMatchObject({
      name: "knock-lambda-dev", imageScanningConfiguration: { scanOnPush: true }, forceDelete: true,
    });
  });

  it("gives the repository the lifecycle policy that keeps the newest five app images", () => {
    // The policy's behaviour is simulated against ECR's evaluation rules in test/registry-lifecycle.test.ts;
    // here: the stack hands the repository exactly that policy, for the configured retention.
    const policy = JSON.parse(String(byName(resources, "knock-repo-lifecycle").inputs.policy));
    expect(byName(resources, "knock-repo-lifecycle").inputs.repository).toBe("knock-lambda-dev");
    expect(policy).toEqual(JSON.parse(JSON.stringify(createLifecyclePolicy(5))));
  });

  it("uploads the build context as source.zip to the source bucket", () => {
    const object = byName(resources, "source-code");
    expect(object.inputs).toMatchObject({ bucket: "knock-source-bucket-a1b2c3d", key: "source.zip" });
    expect(object.inputs.source).toBeDefined();
  });

  it("defines the CodeBuild project per the design card", () => {
    const project = byName(resources, "knock-lambda-build");
    expect(project.inputs).toMatchObject({
      name: "knock-lambda-build-dev",
      serviceRole: `arn:aws:iam::${ACCOUNT_ID}:role/codebuild-role-a1b2c3d`,
      artifacts: { type: "NO_ARTIFACTS" },
      environment: {
        type: "LINUX_CONTAINER", computeType: "BUILD_GENERAL1_MEDIUM", image: "aws/codebuild/standard:7.0", privilegedMode: true,
        environmentVariables: [
          { name: "ECR_REPOSITORY_URI", value: repoUrl },
          { name: "AWS_DEFAULT_REGION", value: REGION },
          { name: "LIBGOUROU_REPO", value: "https://forge.soutade.fr/soutade/libgourou.git" },
          { name: "UPDFPARSER_REPO", value: "https://forge.soutade.fr/soutade/uPDFParser.git" },
        ],
      },
      source: { type: "S3", location: "knock-source-bucket-a1b2c3d/source.zip" },
    });
    const buildspec = JSON.parse(String((project.inputs.source as { buildspec: string }).buildspec));
    expect(buildspec.env.variables.TARGET_PLATFORM).toBe("linux/amd64");
  });

  it("runs the build with Node only, parameters in the environment, and the context hash as trigger", () => {
    const run = byName(resources, "knock-lambda-build-run");
    expect(run.inputs.interpreter).toEqual(["node", "--import", "tsx"]);
    expect(run.inputs.create).toBe("infra/build-runner.ts");
    expect(run.inputs.addPreviousOutputInEnv).toBe(false);
    const env = run.inputs.environment as Record<string, string>;
    expect(env).toMatchObject({
      CODEBUILD_PROJECT_NAME: "knock-lambda-build-dev", AWS_REGION: REGION, CODEBUILD_MAX_RETRIES: "10",
      CODEBUILD_RETRY_DELAY_SECONDS: "30", CODEBUILD_TIMEOUT_MINUTES: "30",
      CODEBUILD_COMPUTE_TYPE: "BUILD_GENERAL1_MEDIUM", CODEBUILD_ENVIRONMENT_TYPE: "LINUX_CONTAINER",
    });
    expect(env).not.toHaveProperty("AWS_PROFILE");
    const triggers = run.inputs.triggers as string[];
    expect(triggers[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(env.BUILD_CONTEXT_SHA256).toBe(triggers[0]);
    // A replaced (renamed) repository holds none of the old images: the build must push there again.
    expect(triggers[2]).toBe(`${ACCOUNT_ID}.dkr.ecr.${REGION}.amazonaws.com/knock-lambda-dev`);
  });

  it("starts the build only after the source object and the role's permissions exist", () => {
    expect(dependsOnByName.get("knock-lambda-build-run")?.sort()).toEqual(["codebuild-policy", "source-code"]);
  });
});

describe("the function", () => {
  it("creates the log group /aws/lambda/<function> with 14 days retention and hands it to the function", () => {
    const logGroup = byName(resources, "knock-lambda-logs");
    expect(logGroup.inputs).toMatchObject({ name: "/aws/lambda/knock-lambda-dev", retentionInDays: 14 });
    // Data flows from the log group into the function, so the group exists before the function.
    expect(byName(resources, "knock-lambda").inputs.loggingConfig).toMatchObject({ logGroup: "/aws/lambda/knock-lambda-dev" });
  });

  it("runs the image the build pushed, pinned by digest — never a tag", () => {
    expect(byName(resources, "knock-lambda").inputs.imageUri).toBe(`${repoUrl}@${FAKE_DIGEST}`);
  });

  it("gets memory, timeout, storage, architecture and the handler's environment from config defaults", () => {
    const fn = byName(resources, "knock-lambda");
    expect(fn.inputs).toMatchObject({
      name: "knock-lambda-dev", packageType: "Image", role: `arn:aws:iam::${ACCOUNT_ID}:role/knock-lambda-role-a1b2c3d`,
      timeout: 900, memorySize: 3008, ephemeralStorage: { size: 2048 }, architectures: ["x86_64"],
      environment: { variables: {
        OUTPUT_BUCKET: "knock-output-bucket-a1b2c3d", DEVICE_CREDENTIALS_BUCKET: "knock-device-bucket-a1b2c3d", DOWNLOAD_URL_EXPIRY_SECONDS: "3600",
      } },
    });
    expect(fn.inputs.reservedConcurrentExecutions).toBeUndefined();
  });

  it("is created only after its log and S3 permissions are attached", () => {
    expect(dependsOnByName.get("knock-lambda")?.sort()).toEqual(["knock-lambda-policy", "knock-lambda-s3-policy"]);
  });

  it("exposes a Function URL with IAM auth by default and the agreed CORS rules", () => {
    expect(byName(resources, "knock-lambda-url").inputs).toMatchObject({
      functionName: "knock-lambda-dev", authorizationType: "AWS_IAM",
      cors: { allowOrigins: ["*"], allowMethods: ["GET", "POST", "DELETE"], allowHeaders: ["*"], maxAge: 300, allowCredentials: false },
    });
  });

  it("lets browsers use every method of the route table through CORS (corsMethods), DELETE included", () => {
    const cors = byName(resources, "knock-lambda-url").inputs.cors as { allowMethods: string[] };
    expect(cors.allowMethods).toEqual(corsMethods());
    expect(cors.allowMethods).toContain("DELETE");
  });
});

describe("least privilege", () => {
  const allStatements = () => ["codebuild-policy", "knock-lambda-policy", "knock-lambda-s3-policy"]
    .flatMap((name) => policyOf(byName(resources, name)).Statement.map((s) => ({ policy: name, ...s })));

  it("grants nothing on * except the registry tokens (ECR's, and ECR Public's with its STS bearer token)", () => {
    const wildcard = allStatements().filter((s) => ([] as string[]).concat(s.Resource).includes("*"));
    expect(wildcard.map((s) => s.Action)).toEqual([["ecr:GetAuthorizationToken"], ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"]]);
  });

  it("owns CodeBuild's log group, with the logs' retention, so destroy removes it and the build never creates it", () => {
    expect(byName(resources, "knock-lambda-build-logs").inputs).toMatchObject({ name: "/aws/codebuild/knock-lambda-build-dev", retentionInDays: 14 });
    // The project names the group (data, so the group exists before any build), and CodeBuild may not create one.
    expect(byName(resources, "knock-lambda-build").inputs.logsConfig).toMatchObject({
      cloudwatchLogs: { status: "ENABLED", groupName: "/aws/codebuild/knock-lambda-build-dev" },
    });
    const actions = policyOf(byName(resources, "codebuild-policy")).Statement.flatMap((s) => s.Action);
    expect(actions).not.toContain("logs:CreateLogGroup");
  });

  it("lets CodeBuild write only its own log group, push only to this repository and read only source.zip", () => {
    const statements = policyOf(byName(resources, "codebuild-policy")).Statement;
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    const logGroup = `arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/codebuild/knock-lambda-build-dev`;
    expect(bySid.WriteOwnBuildLogs.Resource).toEqual([logGroup, `${logGroup}:*`]);
    expect(bySid.PushToThisRepository.Resource).toEqual([`arn:aws:ecr:${REGION}:${ACCOUNT_ID}:repository/knock-lambda-dev`]);
    expect(bySid.PushToThisRepository.Action).not.toContain("ecr:CreateRepository");
    expect(bySid.PushToThisRepository.Action).toContain("ecr:PutImage");
    expect(bySid.ReadBuildContext).toMatchObject({ Action: ["s3:GetObject", "s3:GetObjectVersion"], Resource: ["arn:aws:s3:::knock-source-bucket-a1b2c3d/source.zip"] });
    expect(statements.every((s) => s.Effect === "Allow")).toBe(true);
    expect(statements.flatMap((s) => s.Action).some((a) => a.endsWith(":*"))).toBe(false);
  });

  it("lets the function write only to its own log group (it never creates one)", () => {
    const statements = policyOf(byName(resources, "knock-lambda-policy")).Statement;
    expect(statements).toEqual([expect.objectContaining({
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: [`arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/lambda/knock-lambda-dev:*`],
    })]);
  });

  it("scopes the function's S3 access to converted books and the device bucket", () => {
    const statements = policyOf(byName(resources, "knock-lambda-s3-policy")).Statement;
    const resourcesGranted = statements.flatMap((s) => ([] as string[]).concat(s.Resource));
    expect(resourcesGranted.sort()).toEqual([
      "arn:aws:s3:::knock-device-bucket-a1b2c3d",
      "arn:aws:s3:::knock-device-bucket-a1b2c3d/adept/*",
      "arn:aws:s3:::knock-output-bucket-a1b2c3d",
      "arn:aws:s3:::knock-output-bucket-a1b2c3d/converted/*",
    ]);
    // On the buckets themselves only ListBucket, so that a missing object reads as 404 (S3 answers
    // 403 for a missing key to a caller without it).
    for (const s of statements.filter((s) => ([] as string[]).concat(s.Resource).some((r) => !r.includes("/")))) {
      expect(([] as string[]).concat(s.Action)).toEqual(["s3:ListBucket"]);
    }
    expect(resourcesGranted.some((r) => r.includes("knock-source-bucket"))).toBe(false);
  });

  it("grants exactly the keys the handler uses", () => {
    const statements = policyOf(byName(resources, "knock-lambda-s3-policy")).Statement;
    const allows = (action: string, arn: string) => statements.some((s) => ([] as string[]).concat(s.Action).includes(action)
      && ([] as string[]).concat(s.Resource).some((r) => (r.endsWith("*") ? arn.startsWith(r.slice(0, -1)) : arn === r)));
    const deviceKey = `arn:aws:s3:::knock-device-bucket-a1b2c3d/${DEVICE_OBJECT_KEY}`;
    for (const action of ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]) expect(allows(action, deviceKey), action).toBe(true);
    const book = `arn:aws:s3:::knock-output-bucket-a1b2c3d/${outputKey("req-1", "Book.epub")}`;
    for (const action of ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]) expect(allows(action, book), action).toBe(true);
    expect(allows("s3:PutObject", "arn:aws:s3:::knock-output-bucket-a1b2c3d/elsewhere.epub")).toBe(false);
  });
});

describe("outputs", () => {
  it("exports the original's outputs plus the device bucket and the pinned image", async () => {
    const resolved = Object.fromEntries(await Promise.all(Object.entries(outputs).map(async ([k, v]) => [k, await valueOf(pulumi.output(v))])));
    expect(resolved).toEqual({
      ecr_repository_url: repoUrl,
      lambda_function_name: "knock-lambda-dev",
      lambda_function_arn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:knock-lambda-dev`,
      function_url: `https://abcdefghijklmnop.lambda-url.${REGION}.on.aws/`,
      source_bucket: "knock-source-bucket-a1b2c3d",
      output_bucket: "knock-output-bucket-a1b2c3d",
      device_credentials_bucket: "knock-device-bucket-a1b2c3d",
      codebuild_project_name: "knock-lambda-build-dev",
      codebuild_run_id: FAKE_BUILD_ID,
      image_uri: `${repoUrl}@${FAKE_DIGEST}`,
      access_token: null,
      access_url: null,
      // AWS_IAM: no OPDS feed (an e-reader app cannot sign requests).
      opds_feed_url: null,
    });
  });

  it("creates no access token and exports none outside TOKEN mode", () => {
    expect(outputs.access_token).toBeNull();
    expect(outputs.access_url).toBeNull();
    expect(resources.filter((r) => r.type.startsWith("random:"))).toEqual([]);
    expect((byName(resources, "knock-lambda").inputs.environment as { variables: Record<string, unknown> }).variables).not.toHaveProperty("ACCESS_TOKEN_SHA256");
  });
});
