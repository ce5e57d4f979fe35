/**
 * Exits with `code` once stdout and stderr have passed on everything written to them.
 *
 * Writes to a pipe are synchronous only while the pipe has room: when the reader is slow and
 * the pipe is full, Node queues the rest, and `process.exit()` drops what is queued. So a
 * command's last line (an error and its code, after much output) could be lost. An empty
 * write's callback comes once every earlier write on that stream is done.
 */
export function exitWhenWritten(code: number): void {
  let pending = 2;
  const written = (): void => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', written);
  process.stderr.write('', written);
}
