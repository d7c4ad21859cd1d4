import type { HandlerResult } from "../answer";
import { PAGE_HEADERS, PAGE_HTML } from "../page";

/** `GET /` asking for HTML: the web page (public: it holds no secret; see page.ts). */
export function page(): HandlerResult {
  return { statusCode: 200, headers: { ...PAGE_HEADERS }, body: PAGE_HTML };
}
