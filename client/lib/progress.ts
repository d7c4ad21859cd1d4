import { SingleBar } from "cli-progress";
import type { DownloadProgress } from "./download";

/** How progress is shown, decided once from the terminal and the environment. */
export interface TerminalStyle {
  /** Animate (live line, progress bar): only on a terminal, and not under CI. */
  readonly animate: boolean;
  /** Colours: on a terminal, unless NO_COLOR (no-color.org) or TERM=dumb. */
  readonly color: boolean;
}

/** clig.dev: animate only for a TTY; honour NO_COLOR and CI. */
export function terminalStyle(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): TerminalStyle {
  const tty = stream.isTTY === true && env.TERM !== "dumb";
  const ci = env.CI !== undefined && env.CI !== "" && env.CI !== "false" && env.CI !== "0";
  return { animate: tty && !ci, color: tty && (env.NO_COLOR === undefined || env.NO_COLOR === "") };
}

/** Human-readable size: 1.2 MB, 640 KB, 512 B. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "B";
  for (const u of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = u;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
}

/** Progress of one book, from sending the ACSM to saving the file. */
export interface BookProgress {
  /** A new phase ("sending", "converting"); a live line with elapsed time on a terminal. */
  phase(text: string): void;
  /** Byte progress of the download. */
  readonly download: DownloadProgress;
  /** The book is done: one final line. */
  succeeded(line: string): void;
  /** The book failed: one final line (the explanation follows it). */
  failed(message: string): void;
}

/** Writes progress and diagnostics to stderr (never stdout, which is for results). */
export interface Reporter {
  note(line: string): void;
  book(label: string): BookProgress;
  /** Stops any animation (before exiting on Ctrl-C). */
  stop(): void;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Creates the reporter for `stream` (stderr) in the given style. */
export function createReporter(stream: NodeJS.WriteStream, style: TerminalStyle): Reporter {
  const paint = (code: number, text: string): string => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  let active: { stop(): void } | undefined;

  const stopActive = (): void => {
    active?.stop();
    active = undefined;
  };

  return {
    note(line) {
      stopActive();
      stream.write(`${line}\n`);
    },
    stop: stopActive,
    book(label) {
      const started = Date.now();
      let phaseStarted = started;
      let phaseText = "";
      let timer: NodeJS.Timeout | undefined;
      let bar: SingleBar | undefined;

      const clearLine = (): void => {
        if (style.animate) stream.write("\r\x1b[2K");
      };
      const stopTimer = (): void => {
        if (timer !== undefined) clearInterval(timer);
        timer = undefined;
      };
      const stopBar = (): void => {
        bar?.stop();
        bar = undefined;
      };
      const stopAll = (): void => {
        stopTimer();
        stopBar();
        clearLine();
      };

      const draw = (frame: number): void => {
        stream.write(`\r\x1b[2K${paint(36, SPINNER[frame % SPINNER.length])} ${label}: ${phaseText} ${paint(2, seconds(Date.now() - phaseStarted))}`);
      };

      return {
        phase(text) {
          stopAll();
          phaseText = text;
          phaseStarted = Date.now();
          if (!style.animate) {
            stream.write(`${label}: ${text}\n`);
            return;
          }
          active = { stop: stopAll };
          let frame = 0;
          draw(frame);
          timer = setInterval(() => draw(++frame), 100);
          timer.unref();
        },
        download: {
          start(total) {
            stopAll();
            if (!style.animate) {
              stream.write(`${label}: downloading${total !== undefined ? ` ${formatBytes(total)}` : ""}\n`);
              return;
            }
            bar = new SingleBar({
              stream,
              hideCursor: false,
              clearOnComplete: true,
              barsize: 24,
              format: (options, params) => {
                const width = options.barsize ?? 24;
                const filled = Math.round(params.progress * width);
                const barText = "█".repeat(filled) + "░".repeat(Math.max(0, width - filled));
                const size = params.total > 0 ? `${formatBytes(params.value)}/${formatBytes(params.total)}` : formatBytes(params.value);
                return `${label}: downloading ${paint(36, barText)} ${Math.floor(params.progress * 100)}% ${size}`;
              },
            });
            bar.start(total ?? 0, 0);
            active = { stop: stopAll };
          },
          advance(bytes) {
            bar?.increment(bytes);
          },
        },
        succeeded(line) {
          stopAll();
          active = undefined;
          stream.write(`${paint(32, "✓")} ${line} ${paint(2, `(${seconds(Date.now() - started)})`)}\n`);
        },
        failed(message) {
          stopAll();
          active = undefined;
          stream.write(`${paint(31, "✗")} ${label}: ${message}\n`);
        },
      };
    },
  };
}
