/** How a `hopguard` command ends: `0` ok (or allowed), `1` denied (or findings), `2` it could not do its job. */
export const ExitCode = Object.freeze({ ok: 0, denied: 1, failed: 2 });

/** A failure the command line reports as one clear message (no stack trace), ending with {@link ExitCode.failed}. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number | undefined; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.exitCode ?? ExitCode.failed;
  }

  override get name(): string {
    return "CliError";
  }
}
