// Vitest setup file (runs in every test file's worker): keeps the handler's structured log lines out
// of the test run's output, where they would sit between the reporter's lines.
//
// The handler's default log sink writes one JSON record per line to process.stdout, as Lambda wants
// (lambda/src/log.ts). Tests that go through the exported entry point get that sink, and in vitest's
// forks pool a worker's stdout is the terminal itself. Rather than silencing the console (which could
// hide what a failing test printed), this captures exactly those records:
// - a write made only of handler log records (JSON objects with time, level, message, request_id)
//   is kept in a list tests can read (`capturedHandlerLogLines()` in test/handler/harness.ts);
// - every other write passes through untouched;
// - when a test fails, the records captured during it are printed with its failure.
import { beforeEach } from "vitest";

/** Where the captured lines live; shared through globalThis so the harness reads the same list. */
export const HANDLER_LOG_LINES = Symbol.for("knock-lambda.test.handlerLogLines");

const LEVELS = new Set(["INFO", "WARN", "ERROR"]);

/** Whether `line` is one record of the handler's logger (lambda/src/log.ts, createLogger). */
export function isHandlerLogRecord(line: string): boolean {
  if (!line.startsWith("{")) return false;
  try {
    const record = JSON.parse(line) as Record<string, unknown>;
    return (
      typeof record.time === "string" &&
      typeof record.level === "string" &&
      LEVELS.has(record.level) &&
      typeof record.message === "string" &&
      typeof record.request_id === "string"
    );
  } catch {
    return false;
  }
}

const store = globalThis as unknown as Record<symbol, string[] | undefined>;
const captured: string[] = (store[HANDLER_LOG_LINES] ??= []);

const originalWrite = process.stdout.write;
process.stdout.write = function write(this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
  const text = typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString("utf8") : undefined;
  const lines = text?.endsWith("\n") ? text.slice(0, -1).split("\n") : undefined;
  if (lines && lines.length > 0 && lines.every(isHandlerLogRecord)) {
    captured.push(...lines);
    // Honour the write callback, wherever the caller put it, as a real write would.
    const callback = rest.find((arg): arg is () => void => typeof arg === "function");
    if (callback) queueMicrotask(callback);
    return true;
  }
  return (originalWrite as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
} as typeof process.stdout.write;

beforeEach(({ onTestFailed }) => {
  const start = captured.length;
  onTestFailed(() => {
    const lines = captured.slice(start);
    if (lines.length > 0) console.error(`handler log lines captured during this test:\n${lines.join("\n")}`);
  });
});
