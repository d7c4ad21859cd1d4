// What the benchmarks (npm run bench:*) read from the environment, read the same way by each.

/** A bad setting given to a bench: it exits 2 with the message. */
export class UsageError extends Error {}

/** A positive whole number from the environment, or the default; anything else is a usage error. */
export function countFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number ≥ 1, got "${raw}"`);
  return n;
}
