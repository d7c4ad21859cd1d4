// A handler for tests, from one flat object: the handler's options and its test seams together, so a
// test says `testHandler({ config, tmpRoot, egress, toolEnv })` and overrides any of them by spreading.
// No vitest here: the benchmark and plain-Node scripts may load it too.
import { createHandler, type Handler, type HandlerOptions, type HandlerSeams } from "../../lambda/src/handler";

/** {@link HandlerOptions} and any of the {@link HandlerSeams}, in one object. */
export type TestHandlerDeps = HandlerOptions & Partial<HandlerSeams>;

/** createHandler with `deps` split into its options and its seams. */
export function testHandler(deps: TestHandlerDeps): Handler {
  const { resolver, isAllowedAddress, egress, toolEnv, ca, now, retrySleep, kindle, ...options } = deps;
  return createHandler(options, { resolver, isAllowedAddress, egress, toolEnv, ca, now, retrySleep, kindle });
}
