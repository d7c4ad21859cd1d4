// The tail of a failed build's CloudWatch log, printed before the runner's final error line.

import type { Build } from "@aws-sdk/client-codebuild";
import { GetLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";

import type { RunnerDeps } from "./deps";
import { describeError } from "./errors";

/** Lines printed from the end of the CloudWatch build log when a build fails. */
export const LOG_TAIL_LINES = 30;

/** The last {@link LOG_TAIL_LINES} lines of the build's CloudWatch log, framed; never throws. */
export async function logTail(build: Build, deps: RunnerDeps): Promise<string[]> {
  const group = build.logs?.groupName;
  const stream = build.logs?.streamName;
  if (!group || !stream) return ["(no CloudWatch log recorded for this build)"];
  try {
    const page = await deps.logs.send(
      new GetLogEventsCommand({ logGroupName: group, logStreamName: stream, startFromHead: false, limit: LOG_TAIL_LINES }),
    );
    // Sorted defensively: the API documents the newest-first *selection*, not the order within a page.
    const events = [...(page.events ?? [])].sort((a, b) => (a.timestamp ?? 0) - (b.timestamp ?? 0));
    const lines = events.flatMap((e) => (e.message ?? "").replace(/\s+$/, "").split(/\r?\n/)).slice(-LOG_TAIL_LINES);
    if (lines.length === 0) return [`(the build log ${group}/${stream} is empty so far)`];
    return [`--- last ${lines.length} log lines (${group}) ---`, ...lines, "--- end of log ---"];
  } catch (err) {
    return [`(could not read the build log ${group}/${stream}: ${describeError(err)})`];
  }
}
