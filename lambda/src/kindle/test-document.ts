import { writeZip } from "../zip";

/**
 * The small document `knock kindle-test` (`POST /kindle {"test": true}`) sends: a one-chapter
 * EPUB 3 that meets what Amazon asks of EPUBs (an XML declaration with UTF-8, `dc:language`, one
 * title, no links to body ids, every image with a `src` — it has none), so that what it checks is
 * the mail set-up alone: the SMTP sign-in, the sender Amazon approves, the Kindle address.
 * The OCF rules it follows (EPUB 3.3 §4.1): `mimetype` first and stored, `META-INF/container.xml`
 * naming the package document; the package (§5) has a unique identifier, a title, a language and
 * `dcterms:modified`, and a navigation document (§7).
 */
export const TEST_DOCUMENT_TITLE = "knock-lambda test document";
export const TEST_DOCUMENT_AUTHOR = "knock-lambda";

export async function testDocument(now: Date): Promise<Buffer> {
  const modified = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const xhtml = (title: string, body: string): string =>
    `<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="en" lang="en">\n<head><title>${title}</title></head>\n<body>\n${body}\n</body>\n</html>\n`;
  const entries = [
    { name: "mimetype", data: Buffer.from("application/epub+zip"), store: true },
    {
      name: "META-INF/container.xml",
      data: Buffer.from(
        '<?xml version="1.0" encoding="utf-8"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">\n  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>\n</container>\n',
      ),
    },
    {
      name: "OEBPS/content.opf",
      data: Buffer.from(
        `<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:6c1c8b1e-5a7d-4f0e-9a56-0c9e3e6b7a11</dc:identifier>
    <dc:title>${TEST_DOCUMENT_TITLE}</dc:title>
    <dc:creator>${TEST_DOCUMENT_AUTHOR}</dc:creator>
    <dc:language>en</dc:language>
    <meta property="dcterms:modified">${modified}</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="text" href="text.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="text"/></spine>
</package>
`,
      ),
    },
    { name: "OEBPS/nav.xhtml", data: Buffer.from(xhtml("Contents", '<nav epub:type="toc"><ol><li><a href="text.xhtml">Send to Kindle works</a></li></ol></nav>')) },
    {
      name: "OEBPS/text.xhtml",
      data: Buffer.from(
        xhtml(
          "Send to Kindle works",
          `<h1>Send to Kindle works</h1>\n<p>Your knock-lambda service sent this document on ${modified}. Books you convert with Send to Kindle arrive the same way.</p>`,
        ),
      ),
    },
  ];
  return writeZip(entries.map((e) => ({ ...e, date: now })));
}
