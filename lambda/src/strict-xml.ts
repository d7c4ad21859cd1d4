import { SaxesParser, type SaxesTag } from "saxes";

/**
 * Why a document was refused. For `doctype` and `malformed` the message is a predicate for the
 * caller to complete ("must not contain …", "is not well-formed XML (…)"); for `document` it is the
 * caller's own message (a wrong root, too deep).
 */
export class XmlRefusal extends Error {
  constructor(message: string, readonly kind: "doctype" | "malformed" | "document") {
    super(message);
    this.name = "XmlRefusal";
  }
}

/** An element as the parser reports it: `name` as written; `local`/`uri` when namespaces are on. */
export type XmlTag = SaxesTag;

/** How {@link collectElementText} reads one kind of document. */
export interface CollectOptions<Name extends string> {
  /** Resolve namespaces (the tag's `uri`/`local`); off reads names as written. */
  readonly namespaces: boolean;
  /** Deepest element nesting accepted. saxes resolves namespaces by walking the open elements,
   *  which is quadratic in depth, so a bound keeps every input linear. */
  readonly maxDepth: number;
  /** Refuses a wrong root: the message when `tag` is not the expected document element. */
  readonly rootProblem: (tag: XmlTag) => string | undefined;
  /** The field an element's text belongs to, or undefined to skip it. The first occurrence wins. */
  readonly field: (tag: XmlTag) => Name | undefined;
  /** The message for a document that nests deeper than {@link maxDepth}. */
  readonly tooDeep: string;
}

/**
 * Reads a small XML document with saxes — a conforming XML 1.0 parser that works in one linear pass
 * and stops at the first error — and returns the text of the wanted elements (text and CDATA, trimmed).
 * A DOCTYPE is always refused: neither ADEPT document has one, and refusing it refuses every entity
 * declaration too (they can only appear in its internal subset), so nothing is ever expanded.
 * Throws {@link XmlRefusal}.
 */
export function collectElementText<Name extends string>(xml: string, options: CollectOptions<Name>): Map<Name, string> {
  const found = new Map<Name, string>();
  const parser = new SaxesParser({ xmlns: options.namespaces, position: true });
  let depth = 0;
  /** The element whose text is being collected, and the depth it opened at. */
  let capturing: { name: Name; depth: number; text: string } | undefined;

  parser.on("doctype", () => {
    throw new XmlRefusal("must not contain a DOCTYPE or entity declarations", "doctype");
  });
  parser.on("opentagstart", () => {
    if (depth >= options.maxDepth) throw new XmlRefusal(options.tooDeep, "document");
  });
  parser.on("opentag", (tag) => {
    depth++;
    if (depth === 1) {
      const problem = options.rootProblem(tag);
      if (problem !== undefined) throw new XmlRefusal(problem, "document");
    }
    if (capturing !== undefined) return;
    const name = options.field(tag);
    if (name !== undefined && !found.has(name)) capturing = { name, depth, text: "" };
  });
  const collect = (text: string): void => {
    if (capturing !== undefined) capturing.text += text;
  };
  parser.on("text", collect);
  parser.on("cdata", collect);
  parser.on("closetag", () => {
    if (capturing !== undefined && capturing.depth === depth) {
      found.set(capturing.name, capturing.text.trim());
      capturing = undefined;
    }
    depth--;
  });

  try {
    parser.write(xml).close();
  } catch (err) {
    if (err instanceof XmlRefusal) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new XmlRefusal(`is not well-formed XML (${reason.slice(0, 200)})`, "malformed");
  }
  return found;
}
