// Copies the non-TypeScript files the runtime reads (mail templates, the
// acceptance page's assets) next to the compiled JavaScript in dist/.
import { cpSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const dir of ['mail/templates', 'accept/assets']) {
  const from = join(root, 'src', dir);
  if (existsSync(from)) cpSync(from, join(root, 'dist', dir), { recursive: true });
}
