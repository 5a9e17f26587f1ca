/** Where a command tells a person what it is doing: one line per step on stderr, so stdout stays the result. */
export interface Progress {
  /** Says a step has started; the returned function says how it ended. */
  step(text: string): (result: string) => void;
  /** A line of its own, e.g. a warning. */
  note(text: string): void;
}

/** Progress lines on `stream` (stderr by default); `quiet` prints nothing. */
export function createProgress(
  options: { quiet?: boolean | undefined; stream?: NodeJS.WritableStream | undefined } = {},
): Progress {
  const { quiet = false, stream = process.stderr } = options;
  const write = (line: string): void => {
    if (!quiet) stream.write(`${line}\n`);
  };
  return {
    step(text) {
      write(`… ${text}`);
      return (result) => write(`✓ ${result}`);
    },
    note: (text) => write(`! ${text}`),
  };
}
