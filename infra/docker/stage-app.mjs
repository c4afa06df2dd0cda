// Stages one app as its image holds it: the app and the workspace packages it needs at run
// time (their manifests and compiled code), and a package.json and package-lock.json cut
// down to exactly their production dependencies, so `npm ci --omit=dev` in <dest> installs
// that app's dependencies and nothing else (no test tools, no other app's libraries).
//   node infra/docker/stage-app.mjs <app> <dest>     (from the repository root, after a build)
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [app, dest] = process.argv.slice(2);
const fail = (message) => {
  console.error(`stage-app: ${message}`);
  process.exit(2);
};
if (!app || !dest) fail('usage: node infra/docker/stage-app.mjs <app> <dest>');
const appDir = join('apps', app);
if (!existsSync(join(appDir, 'package.json'))) fail(`no app "${app}" (${appDir}/package.json)`);
if (!existsSync(join(appDir, 'dist'))) fail(`${appDir}/dist is missing: build first (npx turbo run build)`);

const read = (file) => JSON.parse(readFileSync(file, 'utf8'));
const rootManifest = read('package.json');
const lock = read('package-lock.json');
const pkgs = lock.packages;

// Workspaces by name, and the ones the app needs: its production dependencies, transitively.
const byName = new Map();
for (const group of ['apps', 'packages']) {
  for (const dir of readdirSync(group)) {
    const file = join(group, dir, 'package.json');
    if (existsSync(file)) byName.set(read(file).name, join(group, dir));
  }
}
const workspaces = [];
const addWorkspace = (folder) => {
  if (workspaces.includes(folder)) return;
  workspaces.push(folder);
  for (const dep of Object.keys(read(join(folder, 'package.json')).dependencies ?? {})) {
    if (byName.has(dep)) addWorkspace(byName.get(dep));
  }
};
addWorkspace(appDir);
workspaces.sort();

// The lock entries those workspaces reach through production dependencies, found as npm
// resolves them: in the dependent's own node_modules, then in each parent's.
const kept = new Set(['']);
const resolveFrom = (location, name) => {
  let base = location;
  for (;;) {
    const key = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (pkgs[key]) return key;
    if (!base) return null;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut >= 0 ? base.slice(0, cut) : '';
  }
};
const visit = (key) => {
  if (kept.has(key)) return;
  kept.add(key);
  const entry = pkgs[key];
  if (entry.link) return visit(entry.resolved);
  const deps = { ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies };
  for (const name of Object.keys(deps)) {
    if (entry.peerDependenciesMeta?.[name]?.optional && !entry.dependencies?.[name]) continue;
    const found = resolveFrom(key, name);
    if (found) visit(found);
    else if (!entry.optionalDependencies?.[name] && !entry.peerDependencies?.[name]) {
      fail(`the lock file has no ${name}, needed by ${key || 'the root'}`);
    }
  }
};
for (const folder of workspaces) {
  const name = Object.entries(Object.fromEntries(byName)).find(([, f]) => f === folder)?.[0];
  visit(folder);
  visit(`node_modules/${name}`);
}
const staged = {};
for (const key of Object.keys(pkgs)) if (kept.has(key)) staged[key] = structuredClone(pkgs[key]);
// The root and the workspaces keep their production dependencies only.
const prodOnly = (m) => {
  delete m.devDependencies;
  return m;
};
staged[''] = prodOnly({ ...staged[''], workspaces });
for (const folder of workspaces) staged[folder] = prodOnly(staged[folder]);

mkdirSync(dest, { recursive: true });
writeFileSync(join(dest, 'package-lock.json'), `${JSON.stringify({ ...lock, packages: staged }, null, 2)}\n`);
const manifest = prodOnly({ ...rootManifest, workspaces });
delete manifest.scripts;
writeFileSync(join(dest, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
for (const folder of workspaces) {
  mkdirSync(join(dest, folder), { recursive: true });
  const m = prodOnly(read(join(folder, 'package.json')));
  writeFileSync(join(dest, folder, 'package.json'), `${JSON.stringify(m, null, 2)}\n`);
  for (const part of ['dist', 'bin', 'public']) {
    if (existsSync(join(folder, part))) cpSync(join(folder, part), join(dest, folder, part), { recursive: true });
  }
}
console.log(`staged ${app}: ${workspaces.join(', ')}; ${kept.size - 1} lock entries`);
