/** Why {@link withDeadline} gave up waiting. */
export class DeadlineExceeded extends Error {
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = "DeadlineExceeded";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Runs `request` with a signal that aborts after `timeoutMs` or when `outer` aborts, and settles by then whatever
 * the request does: a client that ignores its abort signal cannot hang the caller, and its late answer is dropped.
 *
 * @remarks
 * Rejects with {@link DeadlineExceeded} on time-out and with `outer.reason` on abort. The timer is cleared as soon as
 * the request settles, so an answered round leaves nothing behind to fire later.
 */
export function withDeadline<T>(
  timeoutMs: number,
  outer: AbortSignal | undefined,
  request: (signal: AbortSignal) => PromiseLike<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const controller = new AbortController();
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
      return true;
    };
    const onAbort = (): void => {
      if (!settle()) return;
      controller.abort(outer?.reason);
      reject(outer?.reason);
    };
    const timer = setTimeout(() => {
      if (!settle()) return;
      const error = new DeadlineExceeded(timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
    if (outer?.aborted) {
      onAbort();
      return;
    }
    outer?.addEventListener("abort", onAbort, { once: true });
    let pending: PromiseLike<T>;
    try {
      pending = request(controller.signal);
    } catch (error) {
      if (settle()) reject(error);
      return;
    }
    Promise.resolve(pending).then(
      (value) => {
        if (settle()) resolve(value);
      },
      (error: unknown) => {
        if (settle()) reject(error);
      },
    );
  });
}
