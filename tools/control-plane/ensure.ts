// `node tools/control-plane/ensure.ts`: builds (once) and caches the control-plane
// binaries, so the test run that follows starts at once. Prints where they are.
import { ensureControlPlaneBinaries, ensureHelm } from './binaries.ts';

const binaries = await ensureControlPlaneBinaries();
const helm = await ensureHelm();
for (const [name, path] of Object.entries({ ...binaries, helm })) process.stdout.write(`${name}: ${path}\n`);
