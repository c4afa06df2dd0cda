// The deployment files, checked without a container engine (there is none here): the compose
// file passes `docker-compose config`; every Kubernetes object validates against the API
// schemas of kubernetes-models 4.5.1 (pinned); the workflows validate against the GitHub
// Actions workflow schema; and each image's install and start commands, read from
// the Dockerfile, run outside a container and the app answers /health.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { validateWorkflow } from '@action-validator/core';
import { freePort, initDemo, REPO_ROOT } from '@lifeboat/testkit';
import { afterAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });
const run = promisify(execFile);
const require = createRequire(import.meta.url);
const repo = (...p: string[]) => join(REPO_ROOT, ...p);

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects as parsed YAML; each field read is checked by an expectation
type K8s = Record<string, any>;

const APPS = ['backup', 'restore', 'reconciler', 'drill-scheduler', 'console', 'paper-trader', 'cli'] as const;

describe('docker-compose.yml', () => {
  const compose = YAML.parse(readFileSync(repo('docker-compose.yml'), 'utf8'), { merge: true });

  it('passes `docker-compose config`', async () => {
    // Debian's docker-compose (v1) here; GitHub's runners have the `docker compose` plugin instead.
    const v1 = await run('sh', ['-c', 'command -v docker-compose']).then(
      () => true,
      () => false,
    );
    const v2 =
      !v1 &&
      (await run('docker', ['compose', 'version']).then(
        () => true,
        () => false,
      ));
    if (!v1 && !v2) {
      throw new Error(
        'neither docker-compose nor `docker compose` is installed: apt-get install -y docker-compose (.ci/run installs it)',
      );
    }
    const [cmd, ...args] = v1 ? ['docker-compose'] : ['docker', 'compose'];
    const { stdout } = await run(cmd as string, [...args, '-f', repo('docker-compose.yml'), 'config'], {
      cwd: REPO_ROOT,
    });
    expect(YAML.parse(stdout).services.backup.environment.LIFEBOAT_REDIS_URL).toBe('redis://redis:6379');
  });

  it('holds the whole system, each part healthy before what depends on it starts', () => {
    const services = compose.services as Record<string, Record<string, unknown>>;
    for (const s of ['redis', 'postgres', 'minio', 'minio-init', 'paper-trader', 'exchange', ...APPS]) {
      expect(services, s).toHaveProperty(s);
    }
    expect(services.redis?.command).toEqual(
      expect.arrayContaining(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction']),
    );
    for (const name of ['redis', 'postgres', 'minio', 'exchange'])
      expect(services[name]?.healthcheck, name).toBeTruthy();
    for (const app of ['backup', 'restore', 'reconciler', 'drill-scheduler', 'console']) {
      const deps = services[app]?.depends_on as Record<string, { condition: string }>;
      expect(deps.redis?.condition, app).toBe('service_healthy');
      expect(deps.postgres?.condition, app).toBe('service_healthy');
      expect(deps['minio-init']?.condition, app).toBe('service_completed_successfully');
    }
    // The CLI's drill waits for every worker to be healthy (their images' HEALTHCHECK).
    const cliDeps = services.cli?.depends_on as Record<string, { condition: string }>;
    for (const w of ['backup', 'restore', 'reconciler', 'drill-scheduler'])
      expect(cliDeps[w]?.condition).toBe('service_healthy');
    // The configuration it mounts is a valid lifeboat.yaml.
    const config = YAML.parse(readFileSync(repo('infra/compose/lifeboat.yaml'), 'utf8'));
    expect(config.store).toMatchObject({ type: 's3', endpoint: 'http://minio:9000', bucket: 'lifeboat' });
  });
});

/** Every object of the kustomize base, and the overlay's kustomization. */
function k8sObjects(): Array<{ file: string; doc: K8s }> {
  const dir = repo('infra/k8s/base');
  const kustomization = YAML.parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
  return (kustomization.resources as string[]).flatMap((file) =>
    YAML.parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => ({ file, doc: d.toJSON() })),
  );
}

/** The kubernetes-models class of an object, by apiVersion and kind. */
function modelOf(doc: K8s) {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${doc.kind}` : `kubernetes-models/${version}/${doc.kind}`;
  const mod = require(path) as Record<string, new (d: unknown) => { validate(): void }>;
  const Model = mod[doc.kind];
  if (!Model) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
  return Model;
}

describe('infra/k8s', () => {
  const objects = k8sObjects();

  it('every object validates against the pinned Kubernetes API schema (kubernetes-models 4.5.1)', () => {
    expect(objects.length).toBeGreaterThanOrEqual(10);
    for (const { file, doc } of objects) {
      const Model = modelOf(doc);
      expect(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`).not.toThrow();
    }
  });

  it('the schema check catches a wrong type and a bad enum (it is not a no-op)', () => {
    const cron = structuredClone(objects.find((o) => o.doc.kind === 'CronJob')?.doc) as K8s;
    cron.spec.concurrencyPolicy = 'Sometimes';
    cron.spec.jobTemplate.spec.backoffLimit = 'two';
    const Model = modelOf(cron);
    expect(() => new Model(cron).validate()).toThrow(/concurrencyPolicy must be equal to one of the allowed values/);
  });

  it('backs up with a CronJob that never overlaps, and runs workers that are probed, bounded and unprivileged', () => {
    const cron = objects.find((o) => o.doc.kind === 'CronJob')?.doc as K8s;
    expect(cron.spec).toMatchObject({ concurrencyPolicy: 'Forbid', startingDeadlineSeconds: expect.any(Number) });
    expect(cron.spec.jobTemplate.spec.backoffLimit).toBeGreaterThan(0);
    const job = cron.spec.jobTemplate.spec.template.spec;
    expect(job.containers[0].args).toEqual(['node', 'apps/backup/dist/main.js', 'once']);
    // The pod names its slot from the same cron, so a slot fired twice makes one backup.
    expect(job.containers[0].env).toContainEqual({ name: 'LIFEBOAT_SCHEDULE', value: cron.spec.schedule });
    const deployments = objects.filter((o) => o.doc.kind === 'Deployment').map((o) => o.doc);
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'lifeboat-console',
      'lifeboat-drill-scheduler',
      'lifeboat-reconciler',
      'lifeboat-restore',
    ]);
    for (const spec of [job, ...deployments.map((d) => d.spec.template.spec)]) {
      expect(spec.securityContext.runAsNonRoot).toBe(true);
      for (const c of spec.containers) {
        expect(c.securityContext, c.name).toMatchObject({
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
        });
        expect(c.resources.requests && c.resources.limits, c.name).toBeTruthy();
        // A read-only root still needs a writable /tmp for scratch files.
        expect(
          c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/tmp'),
          c.name,
        ).toBe(true);
      }
    }
    for (const d of deployments) {
      const c = d.spec.template.spec.containers[0];
      expect(c.livenessProbe.httpGet.path, d.metadata.name).toBe('/health');
      expect(c.readinessProbe.httpGet.path, d.metadata.name).toBe('/ready');
    }
    const pdbs = objects
      .filter((o) => o.doc.kind === 'PodDisruptionBudget')
      .map((o) => o.doc.spec.selector.matchLabels['app.kubernetes.io/name']);
    expect(pdbs).toEqual(expect.arrayContaining(['lifeboat-restore', 'lifeboat-reconciler']));
  });

  it('references Secrets and never commits one', () => {
    expect(objects.filter((o) => o.doc.kind === 'Secret')).toEqual([]);
    const text = readdirSync(repo('infra/k8s/base'))
      .map((f) => readFileSync(repo('infra/k8s/base', f), 'utf8'))
      .join('\n');
    expect(text).toContain('secretRef: { name: lifeboat-secrets }');
    expect(text).not.toMatch(/AWS_SECRET_ACCESS_KEY:\s*\S|password:\s*\S/i);
  });

  it("the example overlay's resources and patch targets exist", () => {
    const overlay = YAML.parse(readFileSync(repo('infra/k8s/overlays/example/kustomization.yaml'), 'utf8'));
    expect(overlay.resources).toEqual(['../../base']);
    for (const p of overlay.patches as Array<{ target: { kind: string; name: string } }>) {
      expect(
        objects.some((o) => o.doc.kind === p.target.kind && o.doc.metadata.name === p.target.name),
        p.target.name,
      ).toBe(true);
    }
    const images = new Set(
      objects.flatMap((o) => JSON.stringify(o.doc).match(/ghcr\.io\/example\/lifeboat-[a-z-]+/g) ?? []),
    );
    for (const i of overlay.images as Array<{ name: string }>) expect(images.has(i.name), i.name).toBe(true);
  });
});

describe('.github/workflows', () => {
  it('every workflow validates against the GitHub Actions workflow schema, and CI runs on Node 20 and 22 and drills through compose', () => {
    const dir = repo('.github/workflows');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const { errors } = validateWorkflow(readFileSync(join(dir, f), 'utf8')) as { errors: unknown[] };
      expect(errors, f).toEqual([]);
    }
    expect(validateWorkflow('on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n').errors.length).toBeGreaterThan(0);
    const ci = YAML.parse(readFileSync(join(dir, 'ci.yml'), 'utf8'));
    expect(ci.jobs.test.strategy.matrix.node).toEqual([20, 22]);
    expect(JSON.stringify(ci.jobs.images.steps)).toContain('docker compose run --rm -T cli drill run database-restore');
  });
});

/** One app's image as the Dockerfile says: its install command, ENV, CMD and health port. */
interface ImageSpec {
  app: string;
  install: string;
  env: Record<string, string>;
  cmd: string[];
  healthPort: string | null;
}

function imageSpecs(): ImageSpec[] {
  const lines = readFileSync(repo('infra/docker/Dockerfile'), 'utf8')
    .replace(/\\\n\s*/g, ' ')
    .split('\n');
  const stages = new Map<string, { from: string; lines: string[] }>();
  let current: { from: string; lines: string[] } | null = null;
  for (const line of lines) {
    const from = /^FROM\s+(\S+)\s+AS\s+(\S+)/i.exec(line);
    if (from) {
      current = { from: from[1] as string, lines: [] };
      stages.set(from[2] as string, current);
    } else if (current && line.trim() && !line.startsWith('#')) current.lines.push(line.trim());
  }
  const envOf = (name: string): Record<string, string> => {
    const stage = stages.get(name);
    if (!stage) return {};
    const env = envOf(stage.from);
    for (const l of stage.lines.filter((x) => x.startsWith('ENV '))) {
      for (const m of l.slice(4).matchAll(/(\w+)=(\S+)/g)) env[m[1] as string] = m[2] as string;
    }
    return env;
  };
  return APPS.map((app) => {
    const stage = stages.get(app);
    const installer = stages.get(`install-${app}`);
    if (!stage || !installer) throw new Error(`the Dockerfile has no stages ${app} and install-${app}`);
    const install = installer.lines.find((l) => l.startsWith('RUN '))?.slice(4) as string;
    const cmdLine = stage.lines.filter((l) => l.startsWith('CMD ')).at(-1) as string;
    const entry = stage.lines.filter((l) => l.startsWith('ENTRYPOINT ')).at(-1);
    const cmd = JSON.parse(cmdLine.slice(4)) as string[];
    // tini only forwards signals: what it starts is what runs.
    const full = entry ? [...(JSON.parse(entry.slice(11)) as string[]).slice(2), ...cmd] : cmd;
    const health = stage.lines.find((l) => l.startsWith('HEALTHCHECK '));
    const port = health ? (/127\.0\.0\.1:(\d+)/.exec(health)?.[1] ?? 'API_PORT') : null;
    return { app, install, env: envOf(app), cmd: full, healthPort: port };
  });
}

describe('the images, outside a container', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("each app installs with its image's install command (only its production dependencies), starts with its command and environment, and answers /health", async () => {
    const specs = imageSpecs();
    warmPrebuildCache();
    const work = await mkdtemp(join(tmpdir(), 'lifeboat-images-'));
    dirs.push(work);
    const demo = await initDemo(join(work, 'demo'));
    const redis = process.env.LIFEBOAT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
    const grant = 'ops viewer sha256:' + '0'.repeat(64);
    for (const spec of specs) {
      // The image's WORKDIR is /app; here a directory of its own stands for it.
      const dest = join(work, spec.app);
      const installed = await run('sh', ['-c', spec.install.replace(/\/app$/, dest)], {
        cwd: REPO_ROOT,
        maxBuffer: 64 * 1024 * 1024,
      }).catch((err: Error & { stderr?: string }) => {
        throw new Error(`${spec.app}: install failed: ${err.message}\n${err.stderr ?? ''}`);
      });
      expect(installed.stdout, spec.app).toContain(`staged ${spec.app}`);
      const modules = readdirSync(join(dest, 'node_modules'));
      // Test tools and other apps' libraries stay out.
      for (const absent of ['vitest', 'testcontainers', 's3rver', 'typescript', '@biomejs'])
        expect(modules, `${spec.app}: ${absent}`).not.toContain(absent);
      if (spec.app !== 'console' && spec.app !== 'cli') expect(modules, spec.app).not.toContain('@bull-board');

      const envOn = (port: string): NodeJS.ProcessEnv => ({
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...spec.env,
        // What the deployment supplies: the mounted lifeboat.yaml, the services, a port.
        LIFEBOAT_CONFIG: demo.config,
        LIFEBOAT_REDIS_URL: redis,
        LIFEBOAT_QUEUE_PREFIX: `lbimg-${process.pid}`,
        LIFEBOAT_OPS_PORT: port,
        LIFEBOAT_OPS_HOST: '127.0.0.1',
        LIFEBOAT_CONSOLE_PORT: port,
        LIFEBOAT_CONSOLE_HOST: '127.0.0.1',
        LIFEBOAT_CONSOLE_TOKENS: grant,
        API_PORT: port,
        API_HOST: '127.0.0.1',
        TARGET_DIR: join(demo.config, '..', 'target'),
        EXCHANGE_URL: `http://127.0.0.1:${demo.exchangePort}`,
      });
      let env = envOn(String(await freePort()));
      if (spec.app === 'cli') {
        const help = await run(spec.cmd[0] as string, spec.cmd.slice(1), { cwd: dest, env });
        expect(help.stdout).toContain('Usage: lifeboat');
        continue;
      }
      if (spec.app === 'paper-trader') {
        // Its other command (compose's `exchange` service): the venue, with the keys of the target's .env.
        const keys = Object.fromEntries(
          readFileSync(join(env.TARGET_DIR as string, '.env'), 'utf8')
            .split('\n')
            .map((l) => /^(\w+)=(.*)$/.exec(l.trim()))
            .filter((m): m is RegExpExecArray => m !== null)
            .map((m) => [m[1], m[2]]),
        );
        const venue = spawn('node', ['apps/paper-trader/dist/exchange/main.js'], {
          cwd: dest,
          env: {
            ...env,
            ...keys,
            EXCHANGE_DIR: join(demo.config, '..', 'exchange'),
            EXCHANGE_PORT: String(demo.exchangePort),
          },
          stdio: 'ignore',
        });
        children.push(venue);
      }
      // Started, then /health asked for up to 30 s. A port freePort found free may be taken
      // (by any process's outgoing connection) before the app binds it: then another port.
      const startApp = () => {
        const child = spawn(spec.cmd[0] as string, spec.cmd.slice(1), {
          cwd: dest,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        let output = '';
        child.stdout?.on('data', (d) => {
          output += d;
        });
        child.stderr?.on('data', (d) => {
          output += d;
        });
        return { child, output: () => output };
      };
      let started = startApp();
      let status = 0;
      for (let attempt = 1; ; attempt++) {
        const url = `http://127.0.0.1:${env.API_PORT}/health`;
        for (let i = 0; i < 150 && status !== 200 && started.child.exitCode === null; i++) {
          status = await fetch(url).then(
            (r) => r.status,
            () => 0,
          );
          if (status !== 200) await new Promise((r) => setTimeout(r, 200));
        }
        if (status === 200 || attempt === 3 || !/EADDRINUSE/.test(started.output())) break;
        env = envOn(String(await freePort()));
        started = startApp();
      }
      const { child } = started;
      const how = child.exitCode === null ? 'still running after 30 s' : `exited with code ${child.exitCode}`;
      expect(status, `${spec.app} (${spec.cmd.join(' ')}), ${how}: ${started.output().slice(-3000)}`).toBe(200);
      child.kill('SIGTERM');
      const code = await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(child.exitCode)));
      expect([0, null], `${spec.app} stops on SIGTERM`).toContain(code);
    }
  });
});

/**
 * npm compiles better-sqlite3 when its prebuilt binary cannot be downloaded (GitHub is not
 * reachable here; it is from a Docker build). The prebuild-install step looks in npm's cache
 * first, so the module this checkout compiled is put there, as a download would have: the
 * install command itself is unchanged, and takes seconds instead of a compile per app.
 */
function warmPrebuildCache(): void {
  const pkg = JSON.parse(readFileSync(repo('node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string };
  const { cachedPrebuild } = require(repo('node_modules/prebuild-install/util.js')) as {
    cachedPrebuild(url: string): string;
  };
  const url = `https://github.com/WiseLibs/better-sqlite3/releases/download/v${pkg.version}/better-sqlite3-v${pkg.version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const target = cachedPrebuild(url);
  if (existsSync(target)) return;
  mkdirSync(join(target, '..'), { recursive: true });
  const built = repo('node_modules/better-sqlite3');
  if (!existsSync(join(built, 'build/Release/better_sqlite3.node'))) return;
  const tmp = `${target}.${process.pid}.tmp`;
  execFileSync('tar', ['czf', tmp, '-C', built, 'build/Release/better_sqlite3.node']);
  renameSync(tmp, target);
}
