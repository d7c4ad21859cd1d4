// The few pieces of Markdown the docs tests read: sections by heading, pipe tables, code spans and
// fenced blocks. Only what this project's docs use (GitHub-flavoured Markdown, no HTML), so that a
// test can name exactly which table or line it compares with the code.

/** One `#`-heading and the text up to the next heading of the same or a higher level. */
export interface Section {
  readonly level: number;
  readonly title: string;
  readonly body: string;
}

/** Every heading of the document, fenced code blocks excepted, with its body. */
export function sections(markdown: string): Section[] {
  const lines = markdown.split("\n");
  const found: { level: number; title: string; line: number }[] = [];
  let fenced = false;
  lines.forEach((line, i) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^(#{1,6}) (.+?)\s*$/.exec(line);
    if (m) found.push({ level: m[1].length, title: m[2], line: i });
  });
  return found.map((h, k) => {
    const next = found.slice(k + 1).find((o) => o.level <= h.level);
    return { level: h.level, title: h.title, body: lines.slice(h.line + 1, next?.line ?? lines.length).join("\n") };
  });
}

/** The section whose title is `title`; throws (naming the file) when there is none or more than one. */
export function section(markdown: string, title: string, file = "the document"): Section {
  const matches = sections(markdown).filter((s) => s.title === title);
  if (matches.length !== 1) throw new Error(`${file} has ${matches.length} sections titled "${title}", expected 1`);
  return matches[0];
}

/** Splits a table row into cells at `|` outside code spans (`a|b` stays one cell) and unescaped. */
function cells(row: string): string[] {
  const out: string[] = [];
  let cell = "";
  let code = false;
  const inner = row.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i];
    if (ch === "\\" && inner[i + 1] === "|") {
      cell += "|";
      i++;
    } else if (ch === "`") {
      code = !code;
      cell += ch;
    } else if (ch === "|" && !code) {
      out.push(cell.trim());
      cell = "";
    } else {
      cell += ch;
    }
  }
  out.push(cell.trim());
  return out;
}

/** A pipe table: its header cells and its body rows. */
export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** Every pipe table in `text` (outside fenced blocks), in order. */
export function tables(text: string): Table[] {
  const lines = text.split("\n");
  const found: Table[] = [];
  let fenced = false;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i])) fenced = !fenced;
    if (fenced || !lines[i].trim().startsWith("|") || !/^\s*\|?\s*:?-{3,}/.test(lines[i + 1] ?? "")) continue;
    const header = cells(lines[i]);
    const rows: string[][] = [];
    let j = i + 2;
    for (; j < lines.length && lines[j].trim().startsWith("|"); j++) rows.push(cells(lines[j]));
    found.push({ header, rows });
    i = j - 1;
  }
  return found;
}

/** The text of every code span in `text`, in order (`` `a` `` → `a`). */
export function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
}

/** A fenced code block: its info string (`bash`, `console`, empty) and its text. */
export interface Fence {
  readonly info: string;
  readonly text: string;
}

/** Every fenced code block of the document, in order. */
export function fences(markdown: string): Fence[] {
  return [...markdown.matchAll(/^```([^\n]*)\n([\s\S]*?)^```\s*$/gm)].map((m) => ({ info: m[1].trim(), text: m[2] }));
}

/** The document without its fenced code blocks (each replaced by an empty line). */
export function withoutFences(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, "");
}

/**
 * All the code a reader sees: the lines of every fenced block, and every code span of the prose
 * (a table's cells included).
 */
export function allCode(markdown: string): string[] {
  return [...fences(markdown).flatMap((f) => f.text.split("\n")), ...codeSpans(withoutFences(markdown))];
}
