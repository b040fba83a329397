// Preloaded into the operator process by the memory benchmark only
// (`node --expose-gc --import bench/support/memory-probe.ts src/main.ts …`):
// on "gc" over the IPC channel, runs two full garbage collections and answers
// with process.memoryUsage(), so that the operator's own /metrics then reports
// live memory rather than garbage. Nothing of it is in the product code.
if (process.send) {
  process.channel?.unref();
  process.on('message', (message: unknown) => {
    if (message !== 'gc') return;
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    process.send?.({ memory: process.memoryUsage(), gc: gc !== undefined });
  });
}
