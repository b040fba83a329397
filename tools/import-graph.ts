// Prints the import graph of src/ folder to folder, with the number of import
// statements behind each edge, e.g. `accept -> invitation  13`.
//
//   node tools/import-graph.ts [ROOT]     (ROOT defaults to this checkout; any Usher tree works)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));
const src = join(root, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** `accept` for src/accept/x.ts, `main` for src/main.ts. */
function folderOf(path: string): string {
  const [first = '', second] = relative(src, path).split('/');
  return second === undefined ? first.replace(/\.ts$/, '') : first;
}

const edges = new Map<string, number>();
for (const file of files(src)) {
  // Every relative specifier of an import or export … from, over one line or several.
  for (const match of readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/g)) {
    const target = resolve(dirname(file), match[1] ?? '');
    const [from, to] = [folderOf(file), folderOf(target)];
    if (from !== to) edges.set(`${from} -> ${to}`, (edges.get(`${from} -> ${to}`) ?? 0) + 1);
  }
}
for (const [edge, count] of [...edges].sort(([a], [b]) => a.localeCompare(b))) process.stdout.write(`${edge.padEnd(28)} ${count}\n`);
