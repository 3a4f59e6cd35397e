/**
 * Errors the user can fix (bad config, bad flag, missing or corrupt input file). The CLI prints their
 * message as one line and exits with code 2; anything else is a runtime failure (exit 1). `details`
 * are printed below it, one per line, where the fix is to pick from a list (e.g. the saved probes).
 */
export class UserError extends Error {
  override name = 'UserError';
  constructor(
    message: string,
    readonly details: readonly string[] = [],
  ) {
    super(message);
  }
}

/** A file that is missing, unreadable or not in the expected format: names the path and the reason. */
export class InputFileError extends UserError {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}
