// The stack as the engine would record it: every resource's URN and the inputs it was registered
// with, under the Pulumi mocks. Two snapshots taken before and after a change show what `pulumi up`
// would do to a stack deployed before it: a URN that differs is a delete plus a create (a
// replacement of a stateful resource, or a lost bucket), an input that differs is an update.
import * as pulumi from "@pulumi/pulumi";
import { installMocks, settled } from "./pulumi-mocks";

/** One registered resource: its URN (no component parents in this program) and its inputs. */
export interface SnapshotEntry {
  readonly urn: string;
  readonly inputs: unknown;
}

/** JSON with object keys sorted, so two snapshots compare line by line. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/**
 * Evaluates index.ts under mocks with `config` and returns every resource, sorted by URN. A URN is
 * `urn:pulumi:<stack>::<project>::<type>::<name>` for a resource without a parent (Pulumi's
 * resource.NewURN); this program registers none with a parent, which the caller can check by the
 * absence of `$` in the type part.
 */
export async function snapshotStack(config: Record<string, string> = {}, stack = "dev"): Promise<SnapshotEntry[]> {
  const resources = await installMocks({ config, stack });
  await pulumi.runtime.runInPulumiStack(async () => {
    const program = await import("../../index");
    return { ...program };
  });
  await settled(resources);
  return resources
    .map((r) => ({ urn: `urn:pulumi:${stack}::knock-lambda::${r.type}::${r.name}`, inputs: canonical(r.inputs) }))
    .sort((a, b) => a.urn.localeCompare(b.urn));
}
