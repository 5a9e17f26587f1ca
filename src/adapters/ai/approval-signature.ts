import { InvalidInputError } from "../../errors.ts";

/**
 * The secret the AI SDK signs tool-approval requests with (`experimental_toolApprovalSecret`): a string (its UTF-8
 * bytes are the HMAC key) or the key bytes themselves.
 */
export type ApprovalSecret = string | Uint8Array;

/** Verifies approval signatures with one secret; the key is imported once, on first use. */
export type ApprovalVerifier = (signed: SignedApproval) => Promise<boolean>;

/** What an approval signature covers, and the signature the request carries. */
export interface SignedApproval {
  signature: unknown;
  approvalId: string;
  toolCallId: string;
  toolName: string;
  /** The tool call's input: its canonical JSON is hashed into the payload. */
  input: unknown;
}

const encoder = new TextEncoder();

/**
 * A verifier for the AI SDK's tool-approval signatures: HMAC-SHA-256 over
 * `JSON.stringify(["ai-sdk-tool-approval-v1", approvalId, toolCallId, toolName, inputDigest])`, where `inputDigest` is
 * the base64url SHA-256 of the input's canonical JSON, the signature itself base64url without padding — exactly what
 * `ai` computes when `experimental_toolApprovalSecret` is set.
 *
 * @remarks
 * Re-implemented rather than imported because `ai` does not export it. Only the v1 payload is accepted: the SDK also
 * still accepts an older newline-joined payload, which no `ai` 7 release signs. The secret is copied, so changing the
 * caller's bytes later changes nothing.
 */
export function approvalVerifier(secret: ApprovalSecret, path: string): ApprovalVerifier {
  const keyBytes = secretBytes(secret, path);
  let key: ReturnType<typeof crypto.subtle.importKey> | undefined;
  return async ({ signature, approvalId, toolCallId, toolName, input }) => {
    const signatureBytes = fromBase64url(signature);
    if (signatureBytes === undefined) return false;
    key ??= crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    const payload = JSON.stringify(["ai-sdk-tool-approval-v1", approvalId, toolCallId, toolName, await digest(input)]);
    return crypto.subtle.verify("HMAC", await key, signatureBytes, encoder.encode(payload));
  };
}

/**
 * Deterministic JSON, as the AI SDK hashes tool inputs: object keys sorted, `undefined` array items as `null`. Like
 * the SDK's, it reads own enumerable keys and ignores `toJSON`; hopguard only hands it JSON snapshots.
 */
export function canonicalJSON(value: unknown): string {
  if (value === null || value === undefined) return JSON.stringify(value);
  if (typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    return `[${value.map((element) => (element === undefined ? "null" : canonicalJSON(element))).join(",")}]`;
  }
  const record = value as Record<string, unknown>;
  return `{${Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJSON(record[key])}`)
    .join(",")}}`;
}

async function digest(input: unknown): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", encoder.encode(canonicalJSON(input)));
  return Buffer.from(hash).toString("base64url");
}

function secretBytes(secret: unknown, path: string): Uint8Array<ArrayBuffer> {
  if (typeof secret === "string" && secret !== "") return encoder.encode(secret);
  if (secret instanceof Uint8Array && secret.length > 0) return new Uint8Array(secret);
  throw new InvalidInputError(path, "must be a non-empty string or Uint8Array: the experimental_toolApprovalSecret");
}

// Only the one spelling the SDK writes: base64url, no padding, canonical trailing bits.
function fromBase64url(signature: unknown): Uint8Array<ArrayBuffer> | undefined {
  if (typeof signature !== "string" || !/^[A-Za-z0-9_-]+$/.test(signature)) return undefined;
  const bytes = Buffer.from(signature, "base64url");
  return bytes.toString("base64url") === signature ? new Uint8Array(bytes) : undefined;
}
