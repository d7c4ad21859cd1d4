// Send to Kindle's resources under mocks (issue 20): the SMTP URL (it holds the password) reaches one
// SSM SecureString parameter and nothing else — no other resource's inputs, not the function's
// environment, not an output; the role may read that one parameter; SES may send only as its
// identity; and a stack without kindle_address has none of it. Invalid settings stop the program.
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it, vi } from "vitest";
import { ACCOUNT_ID, byName, installMocks, policyOf, REGION, settled, valueOf, type RecordedResource } from "./support/pulumi-mocks";

const PASSWORD = "abcd-efgh-ijkl-mnop-UNIQUE-7f3a";
const SMTP_URL = `smtps://reader%40gmail.com:${PASSWORD}@smtp.gmail.com:465`;
const SECRET = ["knock-lambda:kindle_smtp_url"];

async function deploy(config: Record<string, string>, secrets: readonly string[] = SECRET): Promise<{ resources: RecordedResource[]; outputs: Record<string, unknown> }> {
  vi.resetModules();
  const resources = await installMocks({ config, secrets });
  const outputs = (await import("../index")) as Record<string, unknown>;
  await settled(resources);
  return { resources, outputs };
}

const SMTP = { "knock-lambda:kindle_address": "reader_42@kindle.com", "knock-lambda:kindle_from": "reader@gmail.com", "knock-lambda:kindle_smtp_url": SMTP_URL };
const SES = { "knock-lambda:kindle_address": "reader_42@kindle.com", "knock-lambda:kindle_from": "books@reader.example", "knock-lambda:kindle_transport": "ses" };
const env = (resources: RecordedResource[]) => (byName(resources, "knock-lambda").inputs.environment as { variables: Record<string, string> }).variables;

/** Every stack output resolved to its value (an Output itself serializes to no value at all). */
async function resolvedOutputs(outputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  const entries = await Promise.all(Object.entries(outputs).map(async ([k, v]) => [k, pulumi.Output.isInstance(v) ? await valueOf(v) : v] as const));
  return Object.fromEntries(entries);
}

/** Every statement of every policy the function's role has. */
function roleStatements(resources: RecordedResource[]) {
  return resources.filter((r) => r.type === "aws:iam/rolePolicy:RolePolicy").flatMap((r) => policyOf(r).Statement);
}

describe("Send to Kindle by SMTP", () => {
  it("keeps the SMTP URL in one SecureString parameter, names only it to the function, and lets the role read only it", async () => {
    const { resources, outputs } = await deploy(SMTP);
    const parameter = byName(resources, "knock-kindle-smtp-url");
    expect(parameter.type).toBe("aws:ssm/parameter:Parameter");
    expect(parameter.inputs).toMatchObject({ type: "SecureString", name: "/knock-lambda/dev/kindle-smtp-url" });
    // Sent to the engine as a secret: @pulumi/pulumi's wire form of one (runtime/rpc.ts, specialSigKey
    // and specialSecretSig), so the state keeps it encrypted.
    expect(parameter.inputs.value).toEqual({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: SMTP_URL });
    for (const r of resources.filter((x) => x !== parameter)) expect(JSON.stringify(r.inputs), r.name).not.toContain(PASSWORD);
    const values = await resolvedOutputs(outputs);
    expect(values.function_url).toMatch(/^https:\/\//);
    expect(JSON.stringify(values)).not.toContain(PASSWORD);
    expect(env(resources)).toMatchObject({
      KINDLE_ADDRESS: "reader_42@kindle.com", KINDLE_FROM: "reader@gmail.com", KINDLE_TRANSPORT: "smtp", KINDLE_SMTP_PARAMETER: "/knock-lambda/dev/kindle-smtp-url",
    });
    const ssm = roleStatements(resources).filter((st) => [st.Action].flat().some((a) => a.startsWith("ssm:")));
    expect(ssm).toEqual([{ Sid: "ReadKindleSmtpUrl", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [`arn:aws:ssm:${REGION}:${ACCOUNT_ID}:parameter/knock-lambda/dev/kindle-smtp-url`] }]);
    expect(roleStatements(resources).some((st) => [st.Action].flat().some((a) => a.startsWith("ses:") || a.startsWith("kms:")))).toBe(false);
  }, 120_000);

  it("refuses an SMTP URL set without --secret, and never shows its password", async () => {
    await expect(deploy(SMTP, [])).rejects.toThrow(/kindle_smtp_url=.*must be set as a secret.*pulumi config set --secret kindle_smtp_url/);
    await expect(deploy(SMTP, [])).rejects.not.toThrow(new RegExp(PASSWORD));
  }, 120_000);

  it.each([
    [{ ...SMTP, "knock-lambda:kindle_address": "reader@gmail.com" }, /kindle_address=.*not at Amazon's Kindle domain/],
    [{ ...SMTP, "knock-lambda:kindle_from": "" }, /kindle_from=.*required when kindle_address is set/],
    [{ ...SMTP, "knock-lambda:kindle_smtp_url": SMTP_URL.replace(":465", ":25") }, /port 25, which AWS blocks/],
    [{ ...SMTP, "knock-lambda:kindle_smtp_url": "" }, /kindle_smtp_url=.*required with kindle_transport smtp/],
    [{ ...SMTP, "knock-lambda:kindle_from": "reader at gmail" }, /kindle_from="reader at gmail".*expected a mail address/],
    [{ ...SMTP, "knock-lambda:kindle_transport": "sendmail" }, /kindle_transport="sendmail".*smtp, ses/],
    [{ ...SMTP, "knock-lambda:kindle_ses_identity": "gmail.com" }, /kindle_ses_identity="gmail.com": used only with kindle_transport ses/],
  ])("stops on invalid settings, naming the key: %#", async (config, message) => {
    await expect(deploy(config)).rejects.toThrow(message);
  }, 120_000);
});

describe("Send to Kindle by SES", () => {
  it("lets the role send only as the verified identity, and makes no parameter", async () => {
    const { resources } = await deploy(SES, []);
    expect(resources.filter((r) => r.type === "aws:ssm/parameter:Parameter")).toEqual([]);
    const ses = roleStatements(resources).filter((st) => [st.Action].flat().some((a) => a.startsWith("ses:")));
    expect(ses).toEqual([{ Sid: "SendToKindleWithSes", Effect: "Allow", Action: ["ses:SendEmail", "ses:SendRawEmail"], Resource: [`arn:aws:ses:${REGION}:${ACCOUNT_ID}:identity/reader.example`] }]);
    expect(env(resources)).toMatchObject({ KINDLE_TRANSPORT: "ses" });
    expect(env(resources)).not.toHaveProperty("KINDLE_SMTP_PARAMETER");
  }, 120_000);

  it("takes an address identity when it is kindle_from itself", async () => {
    const { resources } = await deploy({ ...SES, "knock-lambda:kindle_ses_identity": "books@reader.example" }, []);
    const ses = roleStatements(resources).filter((st) => [st.Action].flat().some((a) => a.startsWith("ses:")));
    expect(ses.map((st) => st.Resource)).toEqual([[`arn:aws:ses:${REGION}:${ACCOUNT_ID}:identity/books@reader.example`]]);
  }, 120_000);

  it.each([
    [{ ...SES, "knock-lambda:kindle_ses_identity": "other.example" }, /kindle_ses_identity="other.example": kindle_from \(books@reader.example\) is not at this domain/],
    [{ ...SES, "knock-lambda:kindle_ses_identity": "someone@reader.example" }, /kindle_ses_identity="someone@reader.example": an address identity can send only as itself/],
    [{ ...SES, "knock-lambda:kindle_smtp_url": SMTP_URL }, /kindle_smtp_url=.*used only with kindle_transport smtp/],
  ])("stops on an identity it could not send as, or a stray SMTP URL: %#", async (config, message) => {
    await expect(deploy(config, SECRET)).rejects.toThrow(message);
    await expect(deploy(config, SECRET)).rejects.not.toThrow(new RegExp(PASSWORD));
  }, 120_000);
});

describe("without kindle_address", () => {
  it("has no parameter, no Kindle variables and no Kindle grant", async () => {
    const { resources } = await deploy({}, []);
    expect(resources.filter((r) => r.type === "aws:ssm/parameter:Parameter" || r.name === "knock-lambda-kindle-policy")).toEqual([]);
    expect(Object.keys(env(resources)).filter((k) => k.startsWith("KINDLE_"))).toEqual([]);
  }, 120_000);
});
