// Starts one real control plane for the whole integration run and installs
// Usher's CRDs; each test file then works in namespaces of its own.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startControlPlane, type ControlPlane, type UserName } from '../../tools/control-plane/control-plane.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfigs: Record<UserName, string>;
    localControlPlane: boolean;
  }
}

let plane: ControlPlane | undefined;

export async function setup(project: TestProject): Promise<void> {
  plane = await startControlPlane();
  const crds = join(project.config.root, 'crds');
  try {
    for (const args of [['apply', '--server-side', '-f', crds], ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]]) {
      execFileSync('kubectl', ['--kubeconfig', plane.kubeconfigs.admin, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
  } catch (err) {
    await plane.stop();
    throw err;
  }
  project.provide('kubeconfigs', plane.kubeconfigs);
  project.provide('localControlPlane', plane.local);
}

export async function teardown(): Promise<void> {
  await plane?.stop();
}
