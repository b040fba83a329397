// The acceptance page as it was before its caches, for a side-by-side run:
// src/ and bench/support/ of commit 9895e65 (the parent of f961f8a, which
// moved the records into Usher's namespace and gave the page watch-fed caches),
// taken from this repository's git history with `git archive` into a temporary
// directory and imported from there. Nothing in the working tree changes.
//
// That old page reads everything from the API server on every view: a
// cluster-wide LIST of Secrets by the token's selector label, then a GET of
// the invitation and a GET of its namespace. It reads records of its own
// format (beside their invitation, no invitationNamespace), so its
// invitations are seeded with the old tree's own seedSettled.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { root } from './plane.ts';

/** The last commit whose page read the API server on every view. */
export const OLD_PAGE_COMMIT = '9895e65a0fc4976a973c751a4a4c427456911c37';

/** The old tree's UsherConfig: opaque here, only passed back to the old code. */
export interface OldConfig {
  readonly baseUrl: string;
}

export interface OldAcceptServer {
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

export interface OldPage {
  commit: string;
  parseConfig(yamlText: string): OldConfig;
  createAcceptServer(deps: { kubeConfig: KubeConfig; config: OldConfig; log: Logger }): OldAcceptServer;
  /** An invitation laid down as the old controller left it: Sent, its record beside it. */
  seedSettled(client: { core: CoreV1Api; custom: CustomObjectsApi; config: OldConfig }, namespace: string, name: string): Promise<{ token: string }>;
  dispose(): void;
}

interface AcceptModule {
  createAcceptServer(deps: { kubeConfig: KubeConfig; config: OldConfig; log: Logger }): OldAcceptServer;
}
interface ConfigModule {
  parseConfig(yamlText: string, opts?: { source?: string }): OldConfig;
}
interface InvitationsModule {
  invitationBody(namespace: string, name: string): unknown;
  seedSettled(client: { core: CoreV1Api; custom: CustomObjectsApi; config: OldConfig }, body: unknown): Promise<{ token: string }>;
}

/** Extracts the old tree and imports its page, config parser and seeding helper. */
export async function loadOldPage(commit: string = OLD_PAGE_COMMIT): Promise<OldPage> {
  const dir = mkdtempSync(join(tmpdir(), 'usher-old-page-'));
  try {
    const tar = execFileSync('git', ['-C', root, 'archive', '--format=tar', commit, 'src', 'bench/support'], { maxBuffer: 256 << 20 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    // The same packages: package.json and the lock file are unchanged since that commit.
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const from = (path: string): string => pathToFileURL(join(dir, path)).href;
    const accept = (await import(from('src/accept/index.ts'))) as AcceptModule;
    const config = (await import(from('src/config/load.ts'))) as ConfigModule;
    const invitations = (await import(from('bench/support/invitations.ts'))) as InvitationsModule;
    return {
      commit,
      parseConfig: (text) => config.parseConfig(text, { source: `bench (old page, ${commit.slice(0, 7)})` }),
      createAcceptServer: (deps) => accept.createAcceptServer(deps),
      seedSettled: (client, namespace, name) => invitations.seedSettled(client, invitations.invitationBody(namespace, name)),
      dispose: () => {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
