// Lets `node --import ./test/support/hopguard-from-source.ts examples/<file>.ts` run an example against src/ instead
// of the built package: "hopguard" and "hopguard/<adapter>" resolve to their TypeScript entry points, so a test can
// run an example as a user does without building dist/ first.
import { registerHooks } from "node:module";

const source = new URL("../../src/", import.meta.url);

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "hopguard") return { url: new URL("index.ts", source).href, shortCircuit: true };
    if (specifier === "hopguard/local-pdp") return { url: new URL("local-pdp.ts", source).href, shortCircuit: true };
    const adapter = /^hopguard\/([a-z]+)$/.exec(specifier)?.[1];
    if (adapter !== undefined) {
      return { url: new URL(`adapters/${adapter}/index.ts`, source).href, shortCircuit: true };
    }
    return nextResolve(specifier, context);
  },
});
