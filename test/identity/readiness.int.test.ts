// The controller with usher.identity pointed at a Keycloak that is not there:
// it stays up (no crash loop) and /readyz answers 503 saying why, as the
// kubelet's probe and `kubectl describe pod` show it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { freePort } from '../../tools/control-plane/control-plane.ts';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'usher-readyz-'));
let operator: ChildProcess | undefined;

afterAll(() => {
  operator?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

it('an unreachable Keycloak keeps the controller up and not ready, with the reason in /readyz', async () => {
  const [keycloakPort, metricsPort] = await Promise.all([freePort(), freePort()]);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'usher:',
      '  identity:',
      '    provider: keycloak',
      '    keycloak:',
      `      url: http://127.0.0.1:${keycloakPort}`,
      '      realm: platform',
      '      clientId: usher',
      '      clientSecretEnv: KC_SECRET',
      '',
    ].join('\n'),
  );
  let stderr = '';
  operator = spawn(
    join(root, 'node_modules', '.bin', 'node'),
    [join(root, 'src', 'main.ts'), '--config', config, '--kubeconfig', inject('kubeconfigs').operator, '--component', 'controller'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KC_SECRET: 'not-used', LOG_LEVEL: 'warn', USHER_METRICS_PORT: String(metricsPort) } },
  );
  operator.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const readyz = async (): Promise<{ status: number; body: string } | undefined> => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
    return response && { status: response.status, body: await response.text() };
  };
  await expect.poll(async () => (await readyz())?.body, { timeout: 30_000 }).toContain('identity provider');
  const answer = await readyz();
  expect(answer?.status).toBe(503);
  expect(answer?.body).toMatch(new RegExp(`^not ready: identity provider: keycloak at http://127\\.0\\.0\\.1:${keycloakPort} realm platform: .*unreachable`));
  // Still running a while later: no crash loop.
  await new Promise((r) => setTimeout(r, 1500));
  expect(operator.exitCode, stderr).toBeNull();
});
