// `node tools/keycloak/ensure.ts`: installs (once) and caches the Keycloak the tests and
// the demo start, so the test run that follows starts it at once. Prints where it is.
import { ensureKeycloak } from './install.ts';

const { home } = await ensureKeycloak();
process.stdout.write(`keycloak: ${home}\n`);
