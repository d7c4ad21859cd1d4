import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, type ConfigSource } from "../config";

const names = { project: "knock-lambda", stack: "dev" };
const from = (values: Record<string, string>): ConfigSource => (key) => values[key];
const load = (values: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
  loadConfig(from({ "aws:region": "us-east-2", ...values }), names, env);

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    expect(load({})).toEqual({
      project: "knock-lambda", stack: "dev", region: "us-east-2", awsProfile: undefined,
      lambdaTimeout: 900, lambdaMemory: 3008, lambdaLogRetention: 14, lambdaEphemeralStorage: 2048,
      lambdaArchitecture: "x86_64", lambdaReservedConcurrency: undefined, outputBucketLifecycleDays: 1,
      ecrImageRetention: 5, codebuildComputeType: "BUILD_GENERAL1_MEDIUM", codebuildImage: "aws/codebuild/standard:7.0",
      codebuildMaxRetries: 10, codebuildRetryDelay: 30, codebuildTimeoutMinutes: 30, functionUrlAuth: "AWS_IAM",
      accessTokenVersion: 1, opdsFeedTokenVersion: 1, kindle: undefined, downloadUrlExpirySeconds: 3600,
      libgourouRepository: "https://forge.soutade.fr/soutade/libgourou.git",
      updfparserRepository: "https://forge.soutade.fr/soutade/uPDFParser.git",
    });
  });

  it("builds from a mirror of libgourou and uPDFParser when told to", () => {
    expect(load({ libgourou_repository: "https://github.com/someone/libgourou.git", updfparser_repository: "git://mirror.example/uPDFParser" })).toMatchObject({
      libgourouRepository: "https://github.com/someone/libgourou.git", updfparserRepository: "git://mirror.example/uPDFParser",
    });
  });

  it("returns a frozen object", () => {
    expect(Object.isFrozen(load({}))).toBe(true);
  });

  it("reads every key it documents", () => {
    const config = load({
      lambda_timeout: "60", lambda_memory: "1024", lambda_log_retention: "30", lambda_ephemeral_storage: "4096",
      lambda_architecture: "arm64", lambda_reserved_concurrency: "2", output_bucket_lifecycle_days: "3",
      ecr_image_retention: "2", codebuild_compute_type: "BUILD_GENERAL1_SMALL", codebuild_image: "aws/codebuild/custom:1",
      codebuild_max_retries: "3", codebuild_retry_delay: "0", codebuild_timeout_minutes: "45", function_url_auth: "NONE",
      download_url_expiry_seconds: "600",
    });
    expect(config).toMatchObject({
      lambdaTimeout: 60, lambdaMemory: 1024, lambdaLogRetention: 30, lambdaEphemeralStorage: 4096, lambdaArchitecture: "arm64",
      lambdaReservedConcurrency: 2, outputBucketLifecycleDays: 3, ecrImageRetention: 2, codebuildComputeType: "BUILD_GENERAL1_SMALL",
      codebuildImage: "aws/codebuild/custom:1", codebuildMaxRetries: 3, codebuildRetryDelay: 0, codebuildTimeoutMinutes: 45,
      functionUrlAuth: "NONE", downloadUrlExpirySeconds: 600,
    });
  });

  it("reads token mode and the token's generation", () => {
    expect(load({ function_url_auth: "TOKEN", access_token_version: "2" })).toMatchObject({ functionUrlAuth: "TOKEN", accessTokenVersion: 2 });
  });

  it("builds arm64 images on ARM build hosts unless told otherwise", () => {
    expect(load({ lambda_architecture: "arm64" })).toMatchObject({
      codebuildImage: "aws/codebuild/amazonlinux-aarch64-standard:3.0", codebuildComputeType: "BUILD_GENERAL1_LARGE",
    });
  });

  it.each([
    ["lambda_memory", "99999", /lambda_memory="99999".*whole number from 128 to 10240/],
    ["lambda_memory", "1.5", /lambda_memory="1.5".*whole number/],
    ["lambda_timeout", "0", /lambda_timeout="0".*from 1 to 900/],
    ["lambda_timeout", "ten", /lambda_timeout="ten"/],
    ["lambda_log_retention", "13", /lambda_log_retention="13".*one of 1, 3, 5, 7, 14/],
    ["function_url_auth", "OPEN", /function_url_auth="OPEN".*one of AWS_IAM, NONE, TOKEN/],
    ["access_token_version", "0", /access_token_version="0".*from 1 to 1000000/],
    ["opds_feed_token_version", "0", /opds_feed_token_version="0".*from 1 to 1000000/],
    ["opds_feed_token_version", "two", /opds_feed_token_version="two".*whole number/],
    ["lambda_architecture", "x86", /lambda_architecture="x86".*one of x86_64, arm64/],
    ["output_bucket_lifecycle_days", "0", /output_bucket_lifecycle_days="0"/],
    ["ecr_image_retention", "0", /ecr_image_retention="0"/],
    ["codebuild_compute_type", "HUGE", /codebuild_compute_type="HUGE".*BUILD_GENERAL1_MEDIUM/],
    ["codebuild_max_retries", "0", /codebuild_max_retries="0"/],
    ["codebuild_timeout_minutes", "1", /codebuild_timeout_minutes="1".*from 5 to 480/],
    ["lambda_ephemeral_storage", "256", /lambda_ephemeral_storage="256".*from 512 to 10240/],
    ["lambda_reserved_concurrency", "0", /lambda_reserved_concurrency="0".*from 1 to 900, or -1 for none/],
    // Lambda refuses to leave fewer than 100 unreserved executions: 1000 can never be reserved on a default account.
    ["lambda_reserved_concurrency", "1000", /lambda_reserved_concurrency="1000".*from 1 to 900/],
    ["lambda_reserved_concurrency", "-2", /lambda_reserved_concurrency="-2"/],
    ["download_url_expiry_seconds", "999999", /download_url_expiry_seconds="999999".*604800/],
    ["codebuild_image", "my image", /codebuild_image="my image"/],
    ["libgourou_repository", "forge.soutade.fr/soutade/libgourou", /libgourou_repository="forge.soutade.fr\/soutade\/libgourou".*git repository URL starting with https:\/\//],
    ["libgourou_repository", "file:///srv/libgourou", /libgourou_repository="file:\/\/\/srv\/libgourou"/],
    ["libgourou_repository", "--upload-pack=touch /tmp/x", /libgourou_repository=/],
    ["updfparser_repository", "https://mirror.example/u pdf.git", /updfparser_repository=.*without spaces/],
  ])("rejects %s=%s naming the key, the value and what is allowed", (key, value, message) => {
    expect(() => load({ [key]: value })).toThrow(ConfigError);
    expect(() => load({ [key]: value })).toThrow(message);
  });

  it("tells how to fix a bad value", () => {
    expect(() => load({ lambda_memory: "99999" })).toThrow("pulumi config set lambda_memory <value>");
  });

  it("reads the CLI's defaults for optional keys as unset: -1, auto and empty", () => {
    const config = load({ lambda_reserved_concurrency: "-1", codebuild_compute_type: "auto", codebuild_image: "auto", aws_region: "" });
    expect(config).toMatchObject({
      lambdaReservedConcurrency: undefined, codebuildComputeType: "BUILD_GENERAL1_MEDIUM", codebuildImage: "aws/codebuild/standard:7.0", region: "us-east-2",
    });
  });

  it.each([
    [{ lambda_memory: "1" }],
    [{ aws_region: "eu-west-1" }],
    [{ "aws:region": "" }],
    [{ "aws:region": "Ohio" }],
    [{ lambda_log_retention: "2" }],
  ])("names exactly one fix for %j", (values) => {
    let message = "";
    try {
      loadConfig(from(values), names, {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.match(/pulumi config/g)).toHaveLength(1);
    expect(message).toMatch(/Fix it with: pulumi config set \S+ \S+$/);
  });

  describe("region", () => {
    it("uses aws:region, the key the AWS provider reads", () => {
      expect(loadConfig(from({ "aws:region": "eu-west-1" }), names, {}).region).toBe("eu-west-1");
    });

    it("falls back to AWS_REGION like the provider does", () => {
      expect(loadConfig(from({}), names, { AWS_REGION: "ap-south-1" }).region).toBe("ap-south-1");
    });

    it("points a lone aws_region (the original's key) at aws:region instead of deploying elsewhere", () => {
      expect(() => loadConfig(from({ aws_region: "eu-west-1" }), names, {})).toThrow(/pulumi config set aws:region eu-west-1/);
    });

    it("rejects aws_region that disagrees with aws:region", () => {
      expect(() => loadConfig(from({ aws_region: "eu-west-1", "aws:region": "us-east-2" }), names, {})).toThrow(
        'aws_region="eu-west-1": the AWS provider deploys to aws:region (us-east-2); aws_region must be empty or the same. Fix it with: pulumi config set aws:region eu-west-1',
      );
      expect(loadConfig(from({ aws_region: "us-east-2", "aws:region": "us-east-2" }), names, {}).region).toBe("us-east-2");
    });

    it("says how to set a region when none is configured", () => {
      expect(() => loadConfig(from({}), names, {})).toThrow('aws:region="": no region is configured. Fix it with: pulumi config set aws:region us-east-2');
    });

    it("carries aws:profile along for the build runner", () => {
      expect(load({ "aws:profile": "books" }).awsProfile).toBe("books");
    });

    it("rejects something that is not a region name", () => {
      expect(() => loadConfig(from({ "aws:region": "Ohio" }), names, {})).toThrow(/aws:region="Ohio"/);
    });
  });
});

describe("the OPDS feed's token generation", () => {
  it("is read as a whole number", () => {
    expect(load({ function_url_auth: "NONE", opds_feed_token_version: "7" })).toMatchObject({ functionUrlAuth: "NONE", opdsFeedTokenVersion: 7 });
  });
});

describe("Send to Kindle", () => {
  const SMTP_URL = "smtps://you%40gmail.com:app-PASSWORD-5e1d@smtp.gmail.com:465";
  // What the CLI hands the program for a key set with --secret (PULUMI_CONFIG_SECRET_KEYS, full names).
  const SECRET_ENV = { PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(["knock-lambda:kindle_smtp_url"]) };
  const smtp = (values: Record<string, string> = {}, env: NodeJS.ProcessEnv = SECRET_ENV) =>
    load({ kindle_address: "you_1@kindle.com", kindle_from: "you@gmail.com", kindle_smtp_url: SMTP_URL, ...values }, env);
  const ses = (values: Record<string, string> = {}) => load({ kindle_address: "you_1@kindle.com", kindle_from: "books@reader.example", kindle_transport: "ses", ...values });
  const failure = (run: () => unknown): string => {
    try {
      run();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error("expected a ConfigError");
  };

  it("is off while kindle_address is empty", () => {
    expect(load({ kindle_address: "" }).kindle).toBeUndefined();
  });

  it("with smtp keeps the addresses and wraps the URL as a Pulumi secret", async () => {
    const kindle = smtp({ kindle_address: " you_1@free.kindle.com " }).kindle;
    expect(kindle).toMatchObject({ transport: "smtp", address: "you_1@free.kindle.com", from: "you@gmail.com" });
    if (kindle?.transport !== "smtp") throw new Error("expected the smtp transport");
    expect(await pulumi.isSecret(kindle.smtpUrl)).toBe(true);
  });

  it("refuses an SMTP URL that is not a secret, with the --secret command and without the password", () => {
    const message = failure(() => smtp({}, {}));
    expect(message).toContain('kindle_smtp_url="smtps://you%40gmail.com:****@smtp.gmail.com:465"');
    expect(message).toContain("must be set as a secret");
    expect(message).toContain("Fix it with: pulumi config set --secret kindle_smtp_url");
    expect(message).not.toContain("app-PASSWORD-5e1d");
  });

  it.each([
    [{ kindle_address: "you@gmail.com" }, /kindle_address="you@gmail.com"/],
    [{ kindle_from: "" }, /kindle_from="": required when kindle_address is set/],
    [{ kindle_from: "not an address" }, /kindle_from="not an address": expected a mail address/],
    [{ kindle_from: "me@kindle.com" }, /kindle_from="me@kindle.com": expected the address you send from, not a Kindle address/],
    [{ kindle_from: "me@free.kindle.com" }, /kindle_from="me@free.kindle.com": expected the address you send from, not a Kindle address/],
    [{ kindle_transport: "pigeon" }, /kindle_transport="pigeon".*smtp, ses/],
    [{ kindle_smtp_url: "" }, /kindle_smtp_url="": required with kindle_transport smtp/],
    [{ kindle_smtp_url: SMTP_URL.replace(":465", ":25") }, /kindle_smtp_url=.*port 25/],
    [{ kindle_smtp_url: SMTP_URL.replace("smtps:", "https:") }, /kindle_smtp_url="https:.*starts with https:\/\//],
    [{ kindle_ses_identity: "gmail.com" }, /kindle_ses_identity="gmail.com": used only with kindle_transport ses/],
  ])("refuses %j naming the key", (values, message) => {
    const text = failure(() => smtp(values));
    expect(text).toMatch(message);
    expect(text).not.toContain("app-PASSWORD-5e1d");
  });

  it("with ses sends as the domain of kindle_from unless told an identity", () => {
    expect(ses().kindle).toEqual({ transport: "ses", address: "you_1@kindle.com", from: "books@reader.example", sesIdentity: "reader.example" });
    expect(ses({ kindle_ses_identity: "books@reader.example" }).kindle).toMatchObject({ sesIdentity: "books@reader.example" });
    expect(load({ kindle_address: "you_1@kindle.com", kindle_from: "books@mail.reader.example", kindle_transport: "ses", kindle_ses_identity: "reader.example" }).kindle)
      .toMatchObject({ sesIdentity: "reader.example" });
  });

  it.each([
    [{ kindle_ses_identity: "other.example" }, /kindle_ses_identity="other.example": kindle_from \(books@reader.example\) is not at this domain/],
    [{ kindle_ses_identity: "else@reader.example" }, /kindle_ses_identity="else@reader.example": an address identity can send only as itself/],
    [{ kindle_ses_identity: "not a domain" }, /kindle_ses_identity="not a domain": expected a verified SES domain or address/],
    [{ kindle_smtp_url: SMTP_URL }, /kindle_smtp_url=.*used only with kindle_transport smtp/],
  ])("with ses refuses %j", (values, message) => {
    const text = failure(() => ses(values));
    expect(text).toMatch(message);
    expect(text).not.toContain("app-PASSWORD-5e1d");
  });
});
