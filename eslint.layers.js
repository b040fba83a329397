// @ts-check
// The direction of imports between Usher's folders (README, "How Usher is built"):
//
//   main.ts → controller, accept, mail, metrics, identity → invitation → api, config
//                         ↘ runtime (generic: npm packages and node: only)
//
// Each block forbids what its folder must not import. test/lint/layers.test.ts
// lints small files against these rules to show they bite.

/** @param {string[]} groups @param {string} message */
const forbid = (groups, message) => ({ 'no-restricted-imports': ['error', { patterns: [{ group: groups, message }] }] });

/** @type {import('eslint').Linter.Config[]} */
export const layers = [
  {
    files: ['src/runtime/**/*.ts'],
    rules: forbid(['../*', '../**'], 'src/runtime is generic: it imports only npm packages, node: modules and itself.'),
  },
  {
    files: ['src/invitation/**/*.ts'],
    rules: forbid(
      [
        '../runtime/*',
        '../controller/*',
        '../accept/*',
        '../mail/*',
        '../identity/*',
        '../metrics/*',
        '../main.ts',
        '@kubernetes/*',
        'fastify',
        'nodemailer',
        'pino',
      ],
      'src/invitation is the pure domain: no runtime, adapters or I/O libraries (only api/ and config/ of Usher).',
    ),
  },
  {
    files: ['src/accept/**/*.ts'],
    rules: forbid(['../controller/*', '../main.ts'], 'src/accept is an adapter of its own: it shares the domain (src/invitation), not the controller.'),
  },
  {
    files: ['src/identity/**/*.ts'],
    rules: forbid(
      ['../controller/*', '../accept/*', '../mail/*', '../metrics/*', '../main.ts'],
      'src/identity is the identity provider adapter: it implements its port (provider.ts) with the domain and the runtime, and imports no other adapter.',
    ),
  },
  {
    files: ['src/controller/**/*.ts', 'src/mail/**/*.ts', 'src/metrics/**/*.ts'],
    rules: forbid(['../accept/*', '../main.ts'], 'adapters do not import the acceptance page or main.'),
  },
];
