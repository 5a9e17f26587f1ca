import { randomUUID } from "node:crypto";
import { canonicalJson } from "../../canonical-json.ts";
import { HopguardError } from "../../errors.ts";
import { isJsonObject, type JsonObject, own } from "./json-snapshot.ts";

/** The `params._meta` key that carries an admission ticket from the guarded call path to the transport gate. */
export const admissionKey = "hopguard.dev/admission";

interface Admitted {
  /** The canonical JSON of the `{ name, arguments }` that was authorized. */
  readonly call: string;
  /** Whether the guarded path added `_meta` only to carry the ticket (then an emptied `_meta` is dropped again). */
  readonly addedMeta: boolean;
}

/**
 * The `tools/call` messages a client may send: each one authorized by hopguard, named by a random single-use ticket
 * and bound to the exact name and arguments the PDP saw. The transport gate sends a `tools/call` only by redeeming
 * its ticket, so a call that did not pass the check — whichever API, prototype or raw JSON-RPC sent it — has none.
 */
export class Admissions {
  readonly #pending = new Map<string, Admitted>();

  /** Admits one send of `{ name, arguments }` and returns its ticket, for `params._meta[admissionKey]`. */
  issue(name: string, args: unknown, addedMeta: boolean): string {
    const call = canonicalJson({ name, arguments: args });
    // The authorized call is a JSON snapshot; one that is not could never be matched, and is not admitted.
    if (call === undefined) throw refused("its arguments are not JSON");
    const ticket = randomUUID();
    this.#pending.set(ticket, { call, addedMeta });
    return ticket;
  }

  /** Forgets a ticket whose request has settled: sent, failed before sending, or aborted. */
  release(ticket: string): void {
    this.#pending.delete(ticket);
  }

  /**
   * The `tools/call` params to forward, from a JSON snapshot of the outgoing ones: the ticket is redeemed (once) and
   * stripped. Throws when there is no ticket, an unknown or used one, or the call differs from the admitted one.
   */
  redeem(params: unknown): JsonObject {
    const meta = isJsonObject(params) ? own(params, "_meta") : undefined;
    const ticket = isJsonObject(meta) ? own(meta, admissionKey) : undefined;
    if (!isJsonObject(params) || !isJsonObject(meta) || ticket === undefined) {
      throw refused("it did not pass hopguard's check (no admission ticket)");
    }
    const admitted = typeof ticket === "string" ? this.#pending.get(ticket) : undefined;
    if (typeof ticket !== "string" || admitted === undefined) {
      throw refused("its admission ticket is unknown or was already used");
    }
    this.#pending.delete(ticket);
    if (canonicalJson({ name: own(params, "name"), arguments: own(params, "arguments") ?? {} }) !== admitted.call) {
      throw refused("its name or arguments differ from the call hopguard authorized");
    }
    const { [admissionKey]: _ticket, ...rest } = meta;
    const forwarded: JsonObject = { ...params, _meta: rest };
    if (admitted.addedMeta && Object.keys(rest).length === 0) delete forwarded._meta;
    return forwarded;
  }
}

function refused(why: string): HopguardError {
  return new HopguardError("authorization_failed", `hopguard refused to send tools/call: ${why}`);
}
