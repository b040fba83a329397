// `npm run control-plane`: starts the local control plane, installs Usher's
// CRDs and waits until Ctrl-C, printing how to point kubectl at it.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './control-plane.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plane = await startControlPlane();
execFileSync('kubectl', ['--kubeconfig', plane.kubeconfigs.admin, 'apply', '-f', join(root, 'crds')], { stdio: 'inherit' });
process.stdout.write(`
Usher's local control plane is up (Kubernetes API at ${plane.server}).
Point kubectl at it from another terminal:

  export KUBECONFIG=${plane.kubeconfigs.admin}
  kubectl get userinvitations -A

Press Ctrl-C to stop it; its data folder is removed on the way out.
`);
const shutdown = (): void => {
  void plane.stop().then(() => process.exit(0));
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
