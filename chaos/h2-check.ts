// Diagnostic: which HTTP version does a watch speak to the local kube-apiserver,
// through client-node's Watch (undici) and through KubeWatch (node:https)?
import diagnostics from 'node:diagnostics_channel';
import type { TLSSocket } from 'node:tls';
import { Watch } from '@kubernetes/client-node';
import { startPlane } from '../bench/support/plane.ts';
import { KubeWatch } from '../src/runtime/watch.ts';

const protocols: string[] = [];
diagnostics.subscribe('undici:client:connected', (message) => {
  const { socket } = message as { socket: TLSSocket };
  protocols.push(`undici: ALPN ${String(socket.alpnProtocol)}`);
});
const plane = await startPlane();
try {
  for (const [name, watch] of [
    ['client-node Watch', new Watch(plane.kubeConfig)],
    ['KubeWatch', new KubeWatch(plane.kubeConfig)],
  ] as const) {
    const before = protocols.length;
    const controller = await watch.watch(
      '/api/v1/namespaces',
      {},
      () => undefined,
      () => undefined,
    );
    controller.abort();
    console.log(`${name}: ${protocols.slice(before).join(', ') || 'no undici connection (node:https offers no ALPN: HTTP/1.1)'}`);
  }
} finally {
  await plane.stop();
}
