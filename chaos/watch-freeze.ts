// Probe (diagnostic, not part of npm run chaos): a watcher process is frozen
// (SIGSTOP) while events pile up on its watch, the API server is restarted,
// the watcher is thawed; how long until its watch ends (error or close) and
// the change made after the restart is seen? Runs client-node's Watch and
// src/runtime/watch.ts's KubeWatch side by side, each in its own process.
//   node chaos/watch-freeze.ts [rounds] [events] [bytesPerEvent]
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { startPlane } from '../bench/support/plane.ts';
import { pool } from '../bench/support/invitations.ts';
import { KubeWatch } from '../src/runtime/watch.ts';
import { sleep } from './support.ts';

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'child') {
  // One watch of configmaps in namespace `probe`, resumed on end; prints what happens.
  const [kubeconfig, kind, rv] = rest as [string, string, string];
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const watch = kind === 'kube' ? new KubeWatch(kc) : Object.assign(new Watch(kc), { requestTimeoutMs: 150_000 });
  const say = (o: object): void => {
    process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
  };
  let version = rv;
  const slowMs = Number(process.env.SLOW_MS ?? 0);
  const once = (): void => {
    let events = 0;
    void watch.watch(
      '/api/v1/namespaces/probe/configmaps',
      { resourceVersion: version || undefined, allowWatchBookmarks: true },
      (type, obj) => {
        events++;
        // A consumer slower than the stream (the operator's handlers), so the body is paused at times.
        const until = performance.now() + slowMs;
        while (performance.now() < until);
        const o = obj as { metadata?: { name?: string; resourceVersion?: string } };
        if (o.metadata?.resourceVersion && type !== 'ERROR') version = o.metadata.resourceVersion;
        // 410 Gone: start again from now (the server sends every object as ADDED first).
        if (type === 'ERROR') {
          say({ ev: 'error-event', code: (obj as { code?: number }).code });
          version = '';
        } else if (o.metadata?.name?.startsWith('after')) say({ ev: 'seen', name: o.metadata.name });
      },
      (err) => {
        say({ ev: 'ended', events, err: err ? (err as Error).message : null });
        setTimeout(once, 500);
      },
    );
  };
  say({ ev: 'started' });
  once();
} else {
  const rounds = Number(mode ?? 3);
  const events = Number(rest[0] ?? 300);
  const bytes = Number(rest[1] ?? 4000);
  const plane = await startPlane();
  await plane.namespace('probe');
  const children: Record<string, ChildProcess> = {};
  const lines: Record<string, { t: number; ev: string; name?: string; err?: string | null; events?: number }[]> = { client: [], kube: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      const list = await plane.core.listNamespacedConfigMap({ namespace: 'probe' });
      const rv = list.metadata?.resourceVersion ?? '';
      for (const kind of ['client', 'kube']) {
        lines[kind] = [];
        const child = spawn(process.execPath, [import.meta.filename, 'child', plane.kubeconfig, kind, rv], { stdio: ['ignore', 'pipe', 'inherit'] });
        children[kind] = child;
        createInterface({ input: child.stdout }).on('line', (l) => lines[kind]?.push(JSON.parse(l) as never));
      }
      await sleep(1500);
      for (const c of Object.values(children)) c.kill('SIGSTOP');
      const payload = 'x'.repeat(bytes);
      await pool(
        Array.from({ length: events }, (_, i) => `r${r}-${i}`),
        16,
        (name) => plane.core.createNamespacedConfigMap({ namespace: 'probe', body: { metadata: { name }, data: { payload } } }),
      );
      await plane.plane.restartApiServer?.({ signal: 'SIGKILL' });
      await plane.core.createNamespacedConfigMap({ namespace: 'probe', body: { metadata: { name: `after-${r}` } } });
      const thawed = Date.now();
      for (const c of Object.values(children)) c.kill('SIGCONT');
      const deadline = thawed + 170_000;
      const seen = (kind: string): boolean => !!lines[kind]?.some((l) => l.ev === 'seen' && l.name === `after-${r}`);
      while (Date.now() < deadline && !(seen('client') && seen('kube'))) await sleep(100);
      for (const kind of ['client', 'kube']) {
        const end = lines[kind]?.find((l) => l.ev === 'ended' && l.t >= thawed);
        const s = lines[kind]?.find((l) => l.ev === 'seen' && l.name === `after-${r}`);
        console.log(
          `round ${r} ${kind.padEnd(6)}: first watch end ${end ? `${((end.t - thawed) / 1000).toFixed(1)} s after the thaw (${end.events} events, ${end.err})` : 'none'}; change after the restart seen ${s ? `${((s.t - thawed) / 1000).toFixed(1)} s` : 'never'}`,
        );
      }
      for (const c of Object.values(children)) c.kill('SIGKILL');
      await plane.core.deleteCollectionNamespacedConfigMap({ namespace: 'probe' });
    }
  } finally {
    for (const c of Object.values(children)) c.kill('SIGKILL');
    await plane.stop();
  }
}
