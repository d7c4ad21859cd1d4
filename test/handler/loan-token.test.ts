// The pure pieces of library loans: reading a loan token as adept_loan_mgt does (but refusing what
// no token contains), finding the token acsmdownloader reports, and the loan id rule.
import { describe, expect, it } from "vitest";
import { checkLoanId, loanTokenPath, parseLoanToken, summarize } from "../../lambda/src/loans";

// What utils/acsmdownloader.cpp (serializeLoanToken) writes: pugixml's save with a two-space indent.
const TOKEN = `<?xml version="1.0"?>
<loanToken>
  <id>urn:uuid:7b1c6f0e-2a9d-4c55-9a3e-0f4d2b8c9e11</id>
  <operatorURL>https://acs4.library.example.org/fulfillment</operatorURL>
  <validity>2026-12-10T10:00:00+00:00</validity>
  <name>Les Misérables</name>
</loanToken>
`;

describe("parseLoanToken", () => {
  it("reads the four fields acsmdownloader writes", () => {
    expect(parseLoanToken(TOKEN)).toEqual({
      id: "urn:uuid:7b1c6f0e-2a9d-4c55-9a3e-0f4d2b8c9e11",
      operatorURL: "https://acs4.library.example.org/fulfillment",
      validity: "2026-12-10T10:00:00+00:00",
      name: "Les Misérables",
    });
  });

  it.each([
    ["a DOCTYPE (no entity expansion)", '<!DOCTYPE loanToken [<!ENTITY x "y">]>' + TOKEN.slice(TOKEN.indexOf("<loanToken>")), /DOCTYPE/],
    ["another root", TOKEN.replace(/loanToken/g, "fulfillmentToken"), /root is <fulfillmentToken>/],
    ["a missing element", TOKEN.replace(/ {2}<validity>.*\n/, ""), /no <validity>/],
    ["cut-off XML", TOKEN.slice(0, 80), /not well-formed/],
    ["a file: operator", TOKEN.replace("https://acs4.library.example.org/fulfillment", "file:///etc/passwd"), /not http\(s\)/],
    ["something huge", TOKEN.replace("Les Misérables", "x".repeat(70_000)), /larger than/],
  ])("refuses %s", (_name, xml, reason) => {
    expect(() => parseLoanToken(xml)).toThrow(reason);
  });

  it("summarises for the API: ISO end, expired or not, the operator's host", () => {
    const token = parseLoanToken(TOKEN);
    expect(summarize("0123456789abcdef", token, new Date("2026-12-10T09:59:59Z"))).toEqual({
      id: "0123456789abcdef",
      title: "Les Misérables",
      expires_at: "2026-12-10T10:00:00.000Z",
      expired: false,
      operator: "acs4.library.example.org",
    });
    expect(summarize("0123456789abcdef", token, new Date("2026-12-10T10:00:00Z")).expired).toBe(true);
    expect(summarize("0123456789abcdef", { ...token, validity: "someday" }, new Date())).toMatchObject({ expires_at: null, expired: false });
  });
});

describe("loanTokenPath", () => {
  const device = "/tmp/knock-devices/knock-device-abc";

  it("takes the path acsmdownloader printed after Created", () => {
    const out = `Created /tmp/w/download-1/Book.epub\nLoan token serialized into ${device}/loans/0123456789abcdef.xml\n`;
    expect(loanTokenPath(out, device)).toBe(`${device}/loans/0123456789abcdef.xml`);
  });

  it("is undefined for a purchase (no such line)", () => {
    expect(loanTokenPath("Created /tmp/w/download-1/Book.epub\n", device)).toBeUndefined();
  });

  it("is not fooled by a title that prints a line of its own: the last line counts, and only inside <device>/loans", () => {
    const spoof = `Created /tmp/w/x\nLoan token serialized into ${device}/loans/aaaaaaaaaaaaaaaa.xml.epub\nLoan token serialized into ${device}/loans/0123456789abcdef.xml\n`;
    expect(loanTokenPath(spoof, device)).toBe(`${device}/loans/0123456789abcdef.xml`);
    expect(loanTokenPath("Loan token serialized into /etc/0123456789abcdef.xml\n", device)).toBeUndefined();
    expect(loanTokenPath(`Loan token serialized into ${device}/loans/../../0123456789abcdef.xml\n`, device)).toBeUndefined();
    expect(loanTokenPath(`Loan token serialized into ${device}/loans/passwd.xml\n`, device)).toBeUndefined();
  });
});

describe("checkLoanId", () => {
  it("accepts 16 lowercase hex digits only", () => {
    expect(checkLoanId("0123456789abcdef")).toBe("0123456789abcdef");
    for (const bad of ["0123456789ABCDEF", "0123456789abcde", "../device.json00", "0123456789abcdef0", ""]) {
      expect(() => checkLoanId(bad)).toThrow(/16 lowercase hexadecimal digits/);
    }
  });
});
