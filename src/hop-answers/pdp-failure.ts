import { Status } from "@cerbos/core";
import { DeadlineExceeded } from "../deadline.ts";
import { PdpUnavailableError } from "../errors.ts";

/** Turns whatever a Cerbos client threw into a {@link PdpUnavailableError} that says where and why. */
export function toPdpUnavailable(error: unknown, context: { at: string; timeoutMs: number }): PdpUnavailableError {
  const { at } = context;
  if (error instanceof DeadlineExceeded) {
    return new PdpUnavailableError("timeout", `PDP did not answer within ${context.timeoutMs} ms ${at}`, {
      cause: error,
    });
  }
  if (isNotOK(error)) {
    if (error.code === Status.UNAVAILABLE) {
      return new PdpUnavailableError("unreachable", `PDP unreachable ${at}: ${error.details}`, { cause: error });
    }
    if (error.code === Status.CANCELLED) {
      return new PdpUnavailableError("aborted", `PDP request aborted ${at}: ${error.details}`, { cause: error });
    }
    return new PdpUnavailableError("error", `PDP answered ${Status[error.code]} ${at}: ${error.details}`, {
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  const failure = error instanceof Error && error.name === "AbortError" ? "aborted" : "error";
  return new PdpUnavailableError(failure, `PDP request failed ${at}: ${message}`, { cause: error });
}

/**
 * A gRPC status error: a `NotOK` from `@cerbos/core` (any installed copy) or a `@grpc/grpc-js` `ServiceError`, both
 * an `Error` with a numeric `code` and string `details`.
 */
export function isNotOK(error: unknown): error is Error & { code: Status; details: string } {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === "number" &&
    typeof (error as { details?: unknown }).details === "string"
  );
}
