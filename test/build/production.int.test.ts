// The production build, run exactly as the container image runs it
// (`node --enable-source-maps dist/main.js --config FILE`, see Dockerfile), as
// the chart's ServiceAccount, with leader election on as the chart sets it up:
// it becomes ready, reconciles, serves the acceptance page and metrics, and
// shuts down cleanly on SIGTERM, releasing its Lease.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';

const root = join(import.meta.dirname, '..', '..');
const ns = `prod-${Math.random().toString(16).slice(2, 8)}`;
const node = join(root, 'node_modules', '.bin', 'node');

describe('the production build (dist/main.js)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usher-prod-'));
  let operator: ChildProcess;
  let acceptPort: number;
  let metricsPort: number;
  let stderr = '';

  beforeAll(async () => {
    await promisify(execFile)(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')]);
    await promisify(execFile)(node, [join(root, 'tools', 'copy-assets.ts')]);
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['label', 'namespace', ns, 'usher.dev/tenant=acme']);
    [acceptPort, metricsPort] = await Promise.all([freePort(), freePort()]);
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `usher:\n  baseUrl: http://127.0.0.1:${acceptPort}\n  accept:\n    port: ${acceptPort}\n`);
    operator = spawn(node, ['--enable-source-maps', join(root, 'dist', 'main.js'), '--config', config, '--kubeconfig', inject('kubeconfigs').operator], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // What the chart's Deployment sets (the harness bound its RBAC to this identity, lease name included).
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        POD_NAME: 'usher-prod-test',
        POD_NAMESPACE: 'usher-system',
        USHER_LEASE_NAME: 'usher-harness-leader',
        USHER_METRICS_PORT: String(metricsPort),
      },
    });
    operator.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
  });

  afterAll(async () => {
    if (operator.exitCode === null) operator.kill('SIGKILL');
    await deleteNamespaces(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('becomes ready, leads, reconciles and serves the acceptance page and metrics', async () => {
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined))?.status, { timeout: 30_000 }).toBe(200);
    await kubectlOk(['apply', '-n', ns, '-f', join(root, 'examples', 'tenant-developer.yaml')]);
    const wait = await kubectl(['wait', '--for=jsonpath={.status.phase}=Pending', 'userinvitation/jane-doe', '-n', ns, '--timeout=30s']);
    expect(wait.code, `${wait.stderr}\n${stderr}`).toBe(0);
    const invitation = JSON.parse(await kubectlOk(['get', 'userinvitation', 'jane-doe', '-n', ns, '-o', 'json'])) as UserInvitation;
    const page = await fetch(invitation.status?.link ?? '');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('jane.doe@example.com');
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/usher_reconcile_total\{result="(success|requeue_after)"\} [1-9]/);
    expect(metrics).toContain('usher_leader 1');
    const lease = await kubectlOk(['get', 'lease', 'usher-harness-leader', '-n', 'usher-system', '-o', 'jsonpath={.spec.holderIdentity}']);
    expect(lease).toBe('usher-prod-test');
  });

  it('shuts down on SIGTERM with exit code 0 and releases its Lease', async () => {
    const exited = new Promise<number | null>((resolve) => operator.once('exit', resolve));
    operator.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    const holder = await kubectlOk(['get', 'lease', 'usher-harness-leader', '-n', 'usher-system', '-o', 'jsonpath={.spec.holderIdentity}']);
    expect(holder).toBe('');
  });
});
