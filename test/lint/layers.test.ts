// The import rules between Usher's folders (eslint.layers.js) bite: a file in
// each folder that imports what it must not is refused, and one that imports
// what it may is not.
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { layers } from '../../eslint.layers.js';

const eslint = new ESLint({
  cwd: new URL('../..', import.meta.url).pathname,
  overrideConfigFile: true,
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...layers],
});

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: file });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? ''}: ${m.message}`);
}

describe('the layers', () => {
  it.each([
    ['src/runtime/x.ts', "import { decide } from '../invitation/decide.ts';"],
    ['src/runtime/x.ts', "import type { UsherConfig } from '../config/types.ts';"],
    ['src/invitation/x.ts', "import { Informer } from '../runtime/informer.ts';"],
    ['src/invitation/x.ts', "import type { ClusterReader } from '../controller/ports.ts';"],
    ['src/invitation/x.ts', "import { acceptInvitation } from '../accept/acceptance.ts';"],
    ['src/invitation/x.ts', "import { createInvitationMailer } from '../mail/invitation-mailer.ts';"],
    ['src/invitation/x.ts', "import { CoreV1Api } from '@kubernetes/client-node';"],
    ['src/accept/x.ts', "import { Reconciler } from '../controller/reconciler.ts';"],
    ['src/controller/x.ts', "import { lookUp } from '../accept/lookup.ts';"],
    ['src/identity/x.ts', "import { Reconciler } from '../controller/reconciler.ts';"],
    ['src/identity/x.ts', "import { lookUp } from '../accept/lookup.ts';"],
    ['src/invitation/x.ts', "import { createKeycloakProvider } from '../identity/keycloak.ts';"],
  ])('%s may not: %s', async (file, code) => {
    expect((await problems(file, code)).join('\n')).toMatch(/^no-restricted-imports: /);
  });

  it.each([
    ['src/runtime/x.ts', "import { Backoff } from './backoff.ts';\nimport { pino } from 'pino';\nimport { createHash } from 'node:crypto';"],
    [
      'src/invitation/x.ts',
      "import type { UserInvitation } from '../api/types.ts';\nimport { parseDuration } from '../config/duration.ts';\nimport { createHash } from 'node:crypto';",
    ],
    ['src/accept/x.ts', "import { decide } from '../invitation/decide.ts';\nimport { isConflict } from '../runtime/client.ts';"],
    ['src/controller/x.ts', "import { decide } from '../invitation/decide.ts';\nimport { Informer } from '../runtime/informer.ts';"],
    ['src/identity/x.ts', "import { isManagedGroup } from '../invitation/identity.ts';\nimport { silentLogger } from '../runtime/log.ts';"],
    ['src/controller/x.ts', "import type { IdentityProvider } from '../identity/provider.ts';"],
  ])('%s may: %s', async (file, code) => {
    expect(await problems(file, code)).toEqual([]);
  });
});
