// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layers } from './eslint.layers.js';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'eslint.layers.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // @kubernetes/client-node declares its API objects (V1Secret, ...) as classes, but they are
      // plain data: the client serialises object literals exactly like constructed instances.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  ...layers,
  { files: ['eslint.config.js', 'eslint.layers.js'], extends: [tseslint.configs.disableTypeChecked] },
);
