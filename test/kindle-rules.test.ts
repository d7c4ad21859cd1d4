// The rules of a message to a Kindle (lambda/src/kindle/mail-rules.ts): the Kindle address, the
// SMTP URL (never port 25, which Lambda blocks; never echoing the password), the attachment's
// `Title - Author.ext` name, and the largest book each transport carries once base64-encoded.
import { describe, expect, it } from "vitest";
import { KINDLE_DOMAINS, kindleAddressProblem, kindleFileName, maxBookBytes, parseSmtpUrl, smtpUrlProblem } from "../lambda/src/kindle/mail-rules";

describe("kindleAddressProblem", () => {
  it.each(["reader_42@kindle.com", "first.last+books@kindle.com", "Reader-7@Kindle.COM", "reader@free.kindle.com"])("accepts %s", (address) => {
    expect(kindleAddressProblem(address)).toBeUndefined();
  });

  it.each([
    ["", /is empty/],
    ["   ", /is empty/],
    [" reader@kindle.com", /one bare address/],
    ["Reader <reader@kindle.com>", /one bare address/],
    ["a@kindle.com,b@kindle.com", /one bare address/],
    ["a@kindle.com; b@kindle.com", /one bare address/],
    ["@kindle.com", /not an e-mail address/],
    ["reader", /not an e-mail address/],
    [".reader@kindle.com", /not an e-mail address/],
    ["re..ader@kindle.com", /not an e-mail address/],
    ["réader@kindle.com", /not an e-mail address/],
    ["reader@gmail.com", /not at Amazon's Kindle domain/],
    ["reader@kindle.cn", /not at Amazon's Kindle domain/],
    ["reader@kindle.com.example", /not at Amazon's Kindle domain/],
    ["reader@notkindle.com", /not at Amazon's Kindle domain/],
  ] as const)("refuses %j, saying what is wrong and what is allowed", (address, why) => {
    const problem = kindleAddressProblem(address);
    expect(problem).toMatch(why);
    for (const domain of KINDLE_DOMAINS) expect(problem).toContain(`@${domain}`);
  });
});

describe("smtpUrlProblem", () => {
  it.each([
    "smtps://you%40gmail.com:abcdefghijklmnop@smtp.gmail.com:465",
    "smtps://you%40gmail.com:abcd%20efgh%20ijkl%20mnop@smtp.gmail.com",
    "smtp://user:p%2Fss@smtp.example.com:587",
    "smtp://user:pass@smtp.example.com",
    "smtp://user:pass@[2001:db8::1]:2525",
    // WHATWG URL parsing takes the last @ as the end of the user and password.
    "smtps://you@gmail.com:pw@smtp.gmail.com:465",
  ])("accepts %s", (url) => {
    expect(smtpUrlProblem(url)).toBeUndefined();
  });

  it("refuses port 25, saying Lambda blocks it and which ports to use", () => {
    const problem = smtpUrlProblem("smtp://you%40gmail.com:secret@smtp.gmail.com:25");
    expect(problem).toMatch(/port 25.*blocks.*Lambda.*465 \(smtps:\/\/\).*587 \(smtp:\/\/, STARTTLS\)/);
  });

  it.each([
    ["not a url", /not a URL/],
    ["https://u:p@smtp.gmail.com", /starts with https:\/\//],
    ["smtps://smtp.gmail.com:465", /no user name/],
    ["smtps://:secret@smtp.gmail.com:465", /no user name/],
    ["smtps://you%40gmail.com@smtp.gmail.com:465", /no password.*app password/],
    ["smtps://u:%zz-secret@smtp.gmail.com:465", /broken percent-encoding.*%25/],
    ["smtps://u:ab/cd-secret@smtp.gmail.com:465", /not a URL.*%2F/],
    ["smtps://u:123/secret@smtp.gmail.com", /not percent-encoded.*wrong server/],
    ["smtps://u:secret@smtp.gmail.com:587", /smtps:\/\/ with port 587/],
    ["smtp://u:secret@smtp.gmail.com:465", /smtp:\/\/ with port 465/],
    ["smtps://u:secret@smtp.gmail.com:0", /port is 0/],
  ] as const)("refuses %s, naming the part that is wrong and the allowed form", (url, why) => {
    const problem = smtpUrlProblem(url);
    expect(problem).toMatch(why);
    expect(problem).not.toContain("secret");
  });

  it("parses a good URL with the user and password decoded, and the TLS mode from the scheme", () => {
    expect(parseSmtpUrl("smtps://you%40gmail.com:abcd%20efgh%2Fij@smtp.gmail.com:465")).toEqual({
      host: "smtp.gmail.com",
      port: 465,
      implicitTls: true,
      user: "you@gmail.com",
      password: "abcd efgh/ij",
    });
    expect(parseSmtpUrl("smtp://u:p@[2001:db8::1]")).toMatchObject({ host: "2001:db8::1", port: 587, implicitTls: false });
  });

  it("throws the problem, without the password, for a URL it refuses", () => {
    expect(() => parseSmtpUrl("smtp://u:hunter2secret@smtp.gmail.com:25")).toThrow(/port 25/);
    expect(() => parseSmtpUrl("smtp://u:hunter2secret@smtp.gmail.com:25")).not.toThrow(/hunter2/);
  });
});

describe("kindleFileName", () => {
  it("names the file Title - Author.ext", () => {
    expect(kindleFileName("Les Misérables", "Victor Hugo", "epub")).toBe("Les Misérables - Victor Hugo.epub");
    expect(kindleFileName("Manual", "Someone", "pdf")).toBe("Manual - Someone.pdf");
  });

  it("replaces what a file system, mail client or Amazon treats specially with spaces", () => {
    expect(kindleFileName('A/B: "C"?*<>|', "X\\Y;%", "pdf")).toBe("A B C - X Y.pdf");
    expect(kindleFileName("Line\nbreak\u0000\ttab", "Emoji 📚 Author", "epub")).toBe("Line break tab - Emoji Author.epub");
  });

  it("keeps letters of every script, digits and harmless punctuation, composed (NFC)", () => {
    expect(kindleFileName("Cafe\u0301 & Co. (2nd ed.), vol. 1!", "O'Brien-Smith", "epub")).toBe("Café & Co. (2nd ed.), vol. 1! - O'Brien-Smith.epub");
    expect(kindleFileName("Война и мир", "Лев Толстой", "epub")).toBe("Война и мир - Лев Толстой.epub");
    expect(kindleFileName("吾輩は猫である", "夏目漱石", "epub")).toBe("吾輩は猫である - 夏目漱石.epub");
  });

  it("uses the title alone without an author, and 'book' when the title has nothing left", () => {
    expect(kindleFileName("Dune", undefined, "epub")).toBe("Dune.epub");
    expect(kindleFileName("Dune", "  ", "epub")).toBe("Dune.epub");
    expect(kindleFileName(undefined, undefined, "pdf")).toBe("book.pdf");
    expect(kindleFileName("???", "Someone", "epub")).toBe("book.epub");
  });

  it("never starts with a dot or a dash, nor ends the stem with one", () => {
    expect(kindleFileName("...Hidden -", "- Author.", "epub")).toBe("Hidden - Author.epub");
  });

  it("bounds the name: 100 characters and 200 UTF-8 bytes before the extension", () => {
    expect(kindleFileName("x".repeat(300), "Author", "epub")).toBe(`${"x".repeat(100)}.epub`);
    // Cut at 100 characters, then the space the cut left at the end goes too.
    expect(kindleFileName("Word ".repeat(100), "Author", "epub")).toBe(`${"Word ".repeat(20).trim()}.epub`);
    const cjk = kindleFileName("猫".repeat(150), undefined, "epub").replace(/\.epub$/, "");
    expect(Buffer.byteLength(cjk, "utf8")).toBeLessThanOrEqual(200);
    expect(Buffer.byteLength(`${cjk}猫`, "utf8")).toBeGreaterThan(200);
  });
});

describe("maxBookBytes", () => {
  /** What a book of `n` bytes takes in the message: base64 in 76-character lines, each ended by CRLF (RFC 2045 §6.8). */
  const encoded = (n: number): number => {
    const chars = 4 * Math.ceil(n / 3);
    return chars + 2 * Math.ceil(chars / 76);
  };
  const OVERHEAD = 16 * 1024;

  it.each([
    ["smtp", { kind: "smtp", url: "smtps://u:p@smtp.gmail.com:465" }, 25_000_000, 18_000_000],
    ["ses", { kind: "ses", region: "eu-west-1" }, 40_000_000, 29_000_000],
  ] as const)("%s: the largest book that, encoded, fits the message limit with room for headers", (_name, transport, messageLimit, about) => {
    const limit = maxBookBytes(transport);
    expect(encoded(limit) + OVERHEAD).toBeLessThanOrEqual(messageLimit);
    // …and not much smaller than it could be: a few hundred bytes more would not fit.
    expect(encoded(limit + 300) + OVERHEAD).toBeGreaterThan(messageLimit);
    // The "about 18 MB" (Gmail) and "about 29 MB" (SES) the documentation promises.
    expect(limit).toBeGreaterThan(about);
    expect(limit).toBeLessThan(about + 500_000);
    // Under Amazon's 50 MB per message in any case.
    expect(encoded(limit)).toBeLessThan(50_000_000);
  });
});
