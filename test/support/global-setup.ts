// Starts one real control plane for the whole integration run and installs
// Usher's CRDs; each test file then works in namespaces of its own.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureHelm } from '../../tools/control-plane/binaries.ts';
import { startControlPlane, type ControlPlane, type UserName } from '../../tools/control-plane/control-plane.ts';
import { prepareSharedKeycloak, stopSharedKeycloak } from '../../tools/keycloak/shared.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfigs: Record<UserName, string>;
    localControlPlane: boolean;
    /** The local control plane's folder (tokens.csv, sa.key, sa.pub, the API server's flags); absent for USE_EXISTING_CLUSTER. */
    controlPlaneDir?: string;
    /** The local control plane's etcd, http://127.0.0.1:PORT; absent for USE_EXISTING_CLUSTER. */
    etcdUrl?: string;
  }
}

let plane: ControlPlane | undefined;

// ---- Keycloak (test/support/keycloak.ts): a folder for this run's shared Keycloak, which the
// first file that calls useKeycloak() starts; the teardown stops it if one was started.
declare module 'vitest' {
  export interface ProvidedContext {
    keycloakStateDir: string;
  }
}
let keycloakStateDir: string | undefined;
// ---- end Keycloak

export async function setup(project: TestProject): Promise<void> {
  plane = await startControlPlane();
  const crds = join(project.config.root, 'crds');
  const kubectl = (args: string[], input?: string): void => {
    execFileSync('kubectl', ['--kubeconfig', plane?.kubeconfigs.admin ?? '', ...args], { input, stdio: ['pipe', 'ignore', 'inherit'] });
  };
  try {
    kubectl(['apply', '--server-side', '-f', crds]);
    kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
    // The operator and accept identities get exactly the chart's RBAC, rendered by helm: tests that
    // run Usher's controller as `operator` and its acceptance page as `accept` prove the chart grants
    // enough, and nothing in them can lean on admin rights. linkDisclosure=Secret gives the
    // controller the link-Secret rights (Secrets in every namespace) that some tests need.
    if (plane.local) {
      // identity.provider=keycloak adds the controller's users/status right (the Keycloak tests need it);
      // the other keycloak and oidc values only satisfy the chart's checks.
      const identity = [
        'config.identity.provider=keycloak',
        'config.identity.keycloak.url=https://keycloak.invalid',
        'config.identity.keycloak.realm=harness',
        'config.identity.keycloak.clientSecret.existingSecret=unused',
        'config.accept.oidc.enabled=true',
        'config.accept.oidc.issuer=https://keycloak.invalid/realms/harness',
        'config.accept.oidc.clientId=usher-accept',
        'config.accept.oidc.clientSecret.existingSecret=unused',
      ];
      const sets = [
        'serviceAccount.name=usher',
        'accept.serviceAccount.name=usher-accept',
        'config.security.invitations.linkDisclosure=Secret',
        ...identity,
        // The operator may bind exactly edit and view (the roles these maps name); tests show it is refused cluster-admin.
        'config.rbac.enabled=true',
        'config.rbac.roleMap.developer=edit',
        'config.rbac.roleMap.viewer=view',
        'config.rbac.groupMap.developers=view',
      ].flatMap((s) => ['--set', s]);
      const rbac = execFileSync(
        await ensureHelm(),
        ['template', 'usher-harness', join(project.config.root, 'charts', 'usher'), '-n', 'usher-system', ...sets, '--show-only', 'templates/rbac.yaml'],
        { encoding: 'utf8' },
      );
      kubectl(['create', 'namespace', 'usher-system']);
      kubectl(['apply', '-f', '-'], rbac);
    }
  } catch (err) {
    await plane.stop();
    throw err;
  }
  project.provide('kubeconfigs', plane.kubeconfigs);
  project.provide('localControlPlane', plane.local);
  // For a second API server on the same etcd (tools/control-plane/oidc-apiserver.ts).
  if (plane.local) {
    project.provide('controlPlaneDir', plane.dir);
    if (plane.etcdUrl) project.provide('etcdUrl', plane.etcdUrl);
  }
  keycloakStateDir = prepareSharedKeycloak(); // Keycloak
  project.provide('keycloakStateDir', keycloakStateDir); // Keycloak
}

export async function teardown(): Promise<void> {
  if (keycloakStateDir) await stopSharedKeycloak(keycloakStateDir); // Keycloak
  await plane?.stop();
}
