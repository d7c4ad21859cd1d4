// What a terminal shows after a program wrote `output` to it: each line as it stands once every
// carriage return, erase and cursor move has been applied, as a reader copying a transcript from
// their terminal sees it. Handles the sequences `knock` and readline write (CR, BS, CSI n G / C / D,
// CSI K / 0K / 2K); colours and other CSI sequences leave no text.

/** The lines `output` leaves on a terminal, trailing blanks removed. */
export function terminalScreen(output: string): string[] {
  const lines: string[] = [];
  let line: string[] = [];
  let col = 0;
  const chars = [...output];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === "\n") {
      lines.push(line.join("").trimEnd());
      line = [];
      col = 0;
    } else if (ch === "\r") {
      col = 0;
    } else if (ch === "\b") {
      col = Math.max(0, col - 1);
    } else if (ch === "\x1b" && chars[i + 1] === "[") {
      let j = i + 2;
      while (j < chars.length && !/[A-Za-z]/.test(chars[j])) j++;
      const arg = chars.slice(i + 2, j).join("");
      const n = Number.parseInt(arg || "1", 10);
      const command = chars[j];
      i = j;
      if (command === "G") col = n - 1;
      else if (command === "C") col += n;
      else if (command === "D") col = Math.max(0, col - n);
      else if (command === "K" && arg === "2") line = [];
      else if (command === "K" && (arg === "" || arg === "0")) line = line.slice(0, col);
    } else if (ch === "\x1b") {
      i++; // a two-character escape (ESC 7, ESC 8, …): no text
    } else {
      while (line.length < col) line.push(" ");
      line[col] = ch;
      col++;
    }
  }
  if (line.length > 0) lines.push(line.join("").trimEnd());
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}
