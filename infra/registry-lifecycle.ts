// The image repository's tag layout lives here, beside the policy that counts by it; the buildspec
// imports these names to tag what it pushes.

/** Tag of the BuildKit layer cache kept in the image repository itself (no second repository to manage). */
export const CACHE_TAG = "buildcache";

/**
 * Prefix of the tag every build gives the app image it pushes (`build-$CODEBUILD_BUILD_NUMBER`).
 * The lifecycle policy counts images by this tag, so the buildspec must tag with exactly this prefix.
 */
export const APP_TAG_PREFIX = "build-";

/** The tag that moves to the newest app image on every build. */
export const LATEST_TAG = "latest";

/**
 * Selects the app's own images and nothing else: not the `buildcache` manifest (a bare `build`
 * prefix would match it) and not `latest`.
 */
export const APP_TAG_PATTERN = `${APP_TAG_PREFIX}*`;

/**
 * Days an untagged manifest stays after its push. Untagged manifests are the cache manifests a later
 * build superseded (it moved `buildcache` away from them); no build reads them again.
 */
export const UNTAGGED_EXPIRY_DAYS = 1;

/** Keeps the newest `countNumber` images whose tags match every pattern; expires the older ones. */
export interface TaggedCountSelection {
  readonly tagStatus: "tagged";
  readonly tagPatternList: readonly string[];
  readonly countType: "imageCountMoreThan";
  readonly countNumber: number;
}

/** Expires untagged images pushed more than `countNumber` days ago. */
export interface UntaggedAgeSelection {
  readonly tagStatus: "untagged";
  readonly countType: "sinceImagePushed";
  readonly countUnit: "days";
  readonly countNumber: number;
}

/** One rule of the subset of ECR's lifecycle policy language this project writes. */
export interface LifecyclePolicyRule {
  readonly rulePriority: number;
  readonly description: string;
  readonly selection: TaggedCountSelection | UntaggedAgeSelection;
  readonly action: { readonly type: "expire" };
}

/** An ECR lifecycle policy document (serialize it with `JSON.stringify`). */
export interface LifecyclePolicyDocument {
  readonly rules: readonly LifecyclePolicyRule[];
}

/**
 * The lifecycle policy of the image repository: keeps the newest `imageRetention` app images (tags
 * `build-*`), the image tagged `latest`, and the current BuildKit cache manifest (tag `buildcache`);
 * expires untagged manifests (superseded caches) {@link UNTAGGED_EXPIRY_DAYS} day after their push.
 *
 * Why not one `tagStatus: any` rule that keeps N images: ECR's evaluation rules (ECR User Guide,
 * "Lifecycle policy evaluation rules") say a lower-priority rule cannot expire an image a
 * higher-priority rule matched, but "can still identify them as if they haven't been expired" —
 * an `any` rule counts the cache manifest and every superseded cache among its N, so with a small N
 * it expires the image the function runs. Here every rule selects one kind of image, and the only
 * count over app images counts app images alone.
 *
 * @param imageRetention app images to keep, at least 1 (ECR refuses a `countNumber` of 0).
 */
export function createLifecyclePolicy(imageRetention: number): LifecyclePolicyDocument {
  if (!Number.isInteger(imageRetention) || imageRetention < 1) {
    throw new Error(`imageRetention must be a whole number of images, at least 1; got ${imageRetention}`);
  }
  // ECR's API hands the rules back sorted by rulePriority, and the provider shows any other order as
  // a change on every deployment (pulumi-aws, ecr.LifecyclePolicy notes), so they are written sorted.
  return {
    rules: [
      {
        rulePriority: 1,
        // The newest build's image is always the newest app image by push time — except when a build
        // reproduces an older image byte for byte: ECR then only adds the new tags to the existing
        // manifest and lifecycle rules keep using its original push time (aws/containers-roadmap
        // issue 2746), so the count below could rank it as old. `latest` is on it either way.
        description: `Keep the image tagged ${LATEST_TAG}`,
        selection: keepNewest([LATEST_TAG], 1),
        action: { type: "expire" },
      },
      {
        rulePriority: 2,
        // Matching the cache manifest here also keeps it out of reach of every later rule.
        description: "Keep the current BuildKit cache manifest",
        selection: keepNewest([CACHE_TAG], 1),
        action: { type: "expire" },
      },
      {
        rulePriority: 3,
        description: `Keep the newest ${imageRetention} app images (tags ${APP_TAG_PATTERN})`,
        selection: keepNewest([APP_TAG_PATTERN], imageRetention),
        action: { type: "expire" },
      },
      {
        rulePriority: 4,
        description: `Expire untagged manifests (superseded build caches) once older than ${UNTAGGED_EXPIRY_DAYS * 24} hours`,
        selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: UNTAGGED_EXPIRY_DAYS },
        action: { type: "expire" },
      },
    ],
  };
}

/**
 * A pattern list, not a prefix list: ECR's guide calls `tagPatternList` the best practice for tagged
 * images, and a pattern without `*` matches one tag exactly where a prefix would also match
 * `latest-…` or `buildcache-…`.
 */
function keepNewest(tagPatternList: readonly string[], countNumber: number): TaggedCountSelection {
  return { tagStatus: "tagged", tagPatternList, countType: "imageCountMoreThan", countNumber };
}
