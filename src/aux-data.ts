import type { AuxData } from "@cerbos/core";
import { deepFreeze } from "./actor.ts";
import { InvalidInputError } from "./errors.ts";

/**
 * Checks the auxiliary data a chain sends with every check — today, Cerbos's: the user's JWT, which the PDP verifies
 * against its configured key sets and exposes to policies as `request.auxData.jwt` — and freezes a copy of it.
 */
export function toAuxData(input: unknown, path: string): AuxData | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== "object" || input === null) throw new InvalidInputError(path, "must be an object ({ jwt })");
  const { jwt } = input as { jwt?: unknown };
  if (jwt === undefined) return undefined;
  if (typeof jwt !== "object" || jwt === null) {
    throw new InvalidInputError(`${path}.jwt`, "must be an object ({ token, keySetId? })");
  }
  const { token, keySetId } = jwt as { token?: unknown; keySetId?: unknown };
  if (typeof token !== "string" || token === "") {
    throw new InvalidInputError(`${path}.jwt.token`, "must be the JWT, a non-empty string");
  }
  if (keySetId !== undefined && (typeof keySetId !== "string" || keySetId === "")) {
    throw new InvalidInputError(`${path}.jwt.keySetId`, "must be the id of one of the PDP's JWT key sets");
  }
  return deepFreeze({ jwt: keySetId === undefined ? { token } : { token, keySetId } });
}
