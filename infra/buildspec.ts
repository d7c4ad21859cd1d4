import type { LambdaArchitecture } from "../config";
import { APP_TAG_PREFIX, CACHE_TAG, LATEST_TAG } from "./registry-lifecycle";

export { CACHE_TAG };

/** Name of the variable the buildspec exports and the build runner reads the pushed digest from. */
export const DIGEST_VARIABLE = "IMAGE_DIGEST";

/**
 * The BuildKit daemon image the docker-container builder runs, and the one it falls back to. Without
 * `--driver-opt image=`, buildx pulls `moby/buildkit:buildx-stable-1` from Docker Hub, whose anonymous
 * pull limit CodeBuild's shared addresses hit (`toomanyrequests`); AWS's public ECR copy in the `vend`
 * namespace avoids that. A released BuildKit is pinned so that a BuildKit release cannot change a
 * build whose inputs did not change — but which release tags that copy carries is not published, and
 * every public use of it names `buildx-stable-1` (the tag buildx itself defaults to). So the build
 * tries the pin first and, when it cannot be pulled, says so and runs `buildx-stable-1`.
 */
export const BUILDKIT_IMAGE = "public.ecr.aws/vend/moby/buildkit:v0.32.2";
export const BUILDKIT_FALLBACK_IMAGE = "public.ecr.aws/vend/moby/buildkit:buildx-stable-1";

/** ECR Public's registry, and the one region its authorization tokens come from. */
export const PUBLIC_ECR_REGISTRY = "public.ecr.aws";
export const PUBLIC_ECR_TOKEN_REGION = "us-east-1";

/**
 * The CodeBuild project's environment variables that become `--build-arg`s: where libgourou's and
 * uPDFParser's sources are cloned from (the stack settings libgourou_repository and
 * updfparser_repository), so a mirror can stand in when the upstream forge is down.
 */
export const SOURCE_BUILD_ARGS = ["LIBGOUROU_REPO", "UPDFPARSER_REPO"] as const;

/** The Docker platform the image is built for, which must match the function's architecture. */
export function dockerPlatform(architecture: LambdaArchitecture): "linux/amd64" | "linux/arm64" {
  return architecture === "arm64" ? "linux/arm64" : "linux/amd64";
}

/** The subset of the CodeBuild buildspec (version 0.2) this project writes. */
export interface Buildspec {
  readonly version: "0.2";
  readonly env: {
    readonly shell: "bash";
    readonly variables: Readonly<Record<string, string>>;
    readonly "exported-variables": readonly string[];
  };
  readonly phases: {
    readonly pre_build: { readonly "on-failure": "ABORT"; readonly commands: readonly string[] };
    readonly build: { readonly "on-failure": "ABORT"; readonly commands: readonly string[] };
  };
}

/**
 * The build instructions CodeBuild runs on the unpacked source.zip (whose root holds `lambda/`).
 *
 * `ECR_REPOSITORY_URI`, `AWS_DEFAULT_REGION` and the {@link SOURCE_BUILD_ARGS} come from the project's environment. Every command is
 * a single command so CodeBuild's own exit-status check covers it; `on-failure: ABORT` keeps a failed
 * login from being followed by a build, and the digest check turns "pushed, but no digest" into a
 * failed build instead of a deploy of an unknown image (defect 2 of the original).
 */
export function createBuildspec(architecture: LambdaArchitecture): Buildspec {
  const cacheRef = `type=registry,ref=$ECR_REPOSITORY_URI:${CACHE_TAG}`;
  return {
    version: "0.2",
    env: {
      shell: "bash",
      variables: {
        TARGET_PLATFORM: dockerPlatform(architecture),
        BUILDKIT_IMAGE,
        BUILDKIT_FALLBACK_IMAGE,
      },
      "exported-variables": [DIGEST_VARIABLE],
    },
    phases: {
      pre_build: {
        "on-failure": "ABORT",
        commands: [
          // pipefail: a failed token fetch must fail the step, not feed an empty password to docker.
          'set -o pipefail; aws ecr get-login-password --region "$AWS_DEFAULT_REGION" | docker login --username AWS --password-stdin "${ECR_REPOSITORY_URI%%/*}"',
          // Public ECR throttles anonymous pulls (BuildKit and the Dockerfile's base images) far sooner
          // than authenticated ones, and CodeBuild's addresses are shared. Logging in lifts that, but an
          // anonymous pull still works, so a failed login is a warning, not a failed build.
          `if (set -o pipefail; aws ecr-public get-login-password --region ${PUBLIC_ECR_TOKEN_REGION} | docker login --username AWS --password-stdin ${PUBLIC_ECR_REGISTRY}); then echo "logged in to ${PUBLIC_ECR_REGISTRY}"; else echo "warning: could not log in to ${PUBLIC_ECR_REGISTRY}; pulling from it anonymously, at its lower rate limit" >&2; fi`,
          // The registry cache exporter needs a docker-container builder; the default docker driver
          // cannot export it. The builder's container is created from the host's image store, so the
          // image pulled here is the one that runs, and the log says which.
          'if docker pull --quiet "$BUILDKIT_IMAGE"; then buildkit="$BUILDKIT_IMAGE"; else echo "warning: could not pull $BUILDKIT_IMAGE; using $BUILDKIT_FALLBACK_IMAGE instead" >&2; docker pull --quiet "$BUILDKIT_FALLBACK_IMAGE" && buildkit="$BUILDKIT_FALLBACK_IMAGE"; fi && echo "BuildKit image: $buildkit" && docker buildx create --name knock-builder --driver docker-container --driver-opt "image=$buildkit" --use',
          "docker buildx inspect --bootstrap",
        ],
      },
      build: {
        "on-failure": "ABORT",
        commands: [
          // One platform and no attestations: Lambda rejects image indexes, so the pushed digest must be
          // the image manifest itself. ECR needs image-manifest=true,oci-mediatypes=true for cache manifests.
          [
            "docker buildx build",
            '--platform "$TARGET_PLATFORM"',
            "--provenance=false",
            "--sbom=false",
            `--cache-from "${cacheRef}"`,
            `--cache-to "${cacheRef},mode=max,image-manifest=true,oci-mediatypes=true"`,
            "--metadata-file /tmp/build-metadata.json",
            ...SOURCE_BUILD_ARGS.map((name) => `--build-arg "${name}=$${name}"`),
            `--tag "$ECR_REPOSITORY_URI:${APP_TAG_PREFIX}$CODEBUILD_BUILD_NUMBER"`,
            `--tag "$ECR_REPOSITORY_URI:${LATEST_TAG}"`,
            "--push",
            "--file lambda/Dockerfile",
            "lambda",
          ].join(" "),
          `${DIGEST_VARIABLE}=$(jq -r '."containerimage.digest" // empty' /tmp/build-metadata.json)`,
          `[[ "$${DIGEST_VARIABLE}" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "no image digest in buildx metadata" >&2; exit 1; }`,
          `echo "pushed $ECR_REPOSITORY_URI@$${DIGEST_VARIABLE}"`,
        ],
      },
    },
  };
}

/**
 * Serializes the buildspec for CodeBuild. JSON is valid YAML, so the typed object is written once,
 * with no YAML library and no hand-written YAML to drift from it.
 */
export function renderBuildspec(spec: Buildspec): string {
  return JSON.stringify(spec, undefined, 2);
}
