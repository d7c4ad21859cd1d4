/** One structured log line: CloudWatch Logs Insights can query every field. */
export type LogFields = Record<string, unknown>;

/** Where log lines go; tests pass a collector, Lambda gets stdout. */
export type LogSink = (line: string) => void;

/** A logger bound to one invocation's request id. */
export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Creates a logger that writes one JSON object per line, each carrying `request_id`. */
export function createLogger(requestId: string, sink: LogSink = (line) => process.stdout.write(line + "\n")): Logger {
  const write = (level: string, message: string, fields: LogFields = {}): void => {
    sink(JSON.stringify({ time: new Date().toISOString(), level, message, request_id: requestId, ...fields }));
  };
  return {
    info: (message, fields) => write("INFO", message, fields),
    warn: (message, fields) => write("WARN", message, fields),
    error: (message, fields) => write("ERROR", message, fields),
  };
}
