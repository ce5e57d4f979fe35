// A worker entry that cannot start, for tests of the worker pool: answers `start` with a
// failure (`entryOptions.mode` 'fail') or just exits ('exit').
process.on('message', (message: { type?: string; entryOptions?: { mode?: string } }) => {
  if (message.type !== 'start') return;
  if (message.entryOptions?.mode === 'fail') process.send?.({ type: 'failed', code: 'EADDRINUSE', message: 'address in use' });
  process.exit(3);
});
process.send?.({ type: 'hello' });
