// A LeaderElector in a process of its own, so that a test can SIGKILL a leader
// for real (no release, no timers left to clean up), as a node failure would.
//
//   node test/runtime/leader-election-child.ts KUBECONFIG NAMESPACE LEASE IDENTITY
//
// Prints one JSON line per event: {"event":"started"} / {"event":"stopped"}.
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { LeaderElector } from '../../src/runtime/leader-election.ts';

const [kubeconfig, namespace, name, identity] = process.argv.slice(2);
if (!kubeconfig || !namespace || !name || !identity) {
  process.stderr.write('usage: leader-election-child.ts KUBECONFIG NAMESPACE LEASE IDENTITY\n');
  process.exit(2);
}
const say = (event: string): void => {
  process.stdout.write(`${JSON.stringify({ event, identity })}\n`);
};
const elector = new LeaderElector({
  kubeConfig: loadKubeConfig(kubeconfig),
  namespace,
  name,
  identity,
  onStartedLeading: () => {
    say('started');
  },
  onStoppedLeading: () => {
    say('stopped');
  },
});
void elector.run();
