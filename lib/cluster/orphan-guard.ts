/**
 * Preloaded (`node --import`) into the `orthornn train` processes a queue worker starts, which
 * it gives an IPC channel: when the worker dies (killed, its machine preempted), the channel
 * closes and the run ends at once, as the worker did, rather than train on as an orphan in a
 * folder that another worker is about to resume. The channel does not keep the process alive.
 */
if (process.channel) {
  process.channel.unref();
  process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
}

export {};
