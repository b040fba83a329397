// The runtime options: what main reads from its flags and environment, the
// defaults, and a clear error naming the flag or variable for every bad value;
// then main itself, exiting 2 on them before it touches a cluster.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { OptionsError, parseRuntimeOptions, type OptionsIo, type RuntimeOptions } from '../src/options.ts';

/** Outside a pod: no service-account namespace file. */
const noPod: Partial<OptionsIo> = {
  readFile: () => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  },
  hostname: () => 'laptop',
};

function parse(argv: string[], env: NodeJS.ProcessEnv = {}, io: Partial<OptionsIo> = noPod): RuntimeOptions {
  return parseRuntimeOptions(argv, env, io);
}

function problemsOf(argv: string[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parse(argv, env);
  } catch (error) {
    if (error instanceof OptionsError) return error.problems;
    throw error;
  }
  throw new Error('expected an OptionsError, but the options parsed');
}

/** What the chart's controller Deployment sets (charts/usher/templates/_deployment.tpl). */
const chartEnv = {
  POD_NAME: 'usher-7d9-abcde',
  POD_NAMESPACE: 'platform',
  USHER_LEADER_ELECTION: 'true',
  USHER_LEASE_NAME: 'usher',
  USHER_METRICS_PORT: '9090',
  LOG_LEVEL: 'info',
};

describe('parseRuntimeOptions', () => {
  it('reads what the chart passes: flags, POD_NAME, POD_NAMESPACE, USHER_LEASE_NAME, USHER_METRICS_PORT, LOG_LEVEL', () => {
    const env = { ...chartEnv, SMTP_PASSWORD: 'x' };
    expect(parse(['--component', 'controller', '--config', '/etc/usher/config.yaml'], env)).toEqual({
      configPath: '/etc/usher/config.yaml',
      kubeconfig: { env: { KUBECONFIG: undefined, KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined } },
      component: 'controller',
      logLevel: 'info',
      metricsPort: 9090,
      leaderElection: { namespace: 'platform', name: 'usher', identity: 'usher-7d9-abcde' },
      podName: 'usher-7d9-abcde',
      env,
    });
  });

  it('defaults: all components, info, port 9090, leader election on a Lease named usher-leader', () => {
    const options = parse([], { POD_NAMESPACE: 'n' });
    expect(options).toMatchObject({ component: 'all', logLevel: 'info', metricsPort: 9090, leaderElection: { namespace: 'n', name: 'usher-leader' } });
    expect(options.configPath).toBeUndefined();
    expect(options.podName).toBeUndefined();
    expect(options.kubeconfig.path).toBeUndefined();
  });

  it('prefers --config to USHER_CONFIG, and takes either flag form', () => {
    expect(parse(['--config', 'a.yaml'], { USHER_CONFIG: 'b.yaml' }).configPath).toBe('a.yaml');
    expect(parse(['--config=a.yaml'], { USHER_CONFIG: 'b.yaml' }).configPath).toBe('a.yaml');
    expect(parse([], { USHER_CONFIG: 'b.yaml' }).configPath).toBe('b.yaml');
  });

  it('passes --kubeconfig, and the variables loadKubeConfig reads, and nothing else of the environment', () => {
    const env = { KUBECONFIG: '/a:/b', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: '/home/u' };
    expect(parse(['--kubeconfig', '/k'], env).kubeconfig).toEqual({
      path: '/k',
      env: { KUBECONFIG: '/a:/b', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
    });
  });

  it('keeps the environment for the config’s passwordEnv / clientSecretEnv', () => {
    const env = { SMTP_PASSWORD: 'hunter2' };
    expect(parse([], env).env).toBe(env);
  });

  it('turns leader election off with USHER_LEADER_ELECTION=false, and for the acceptance page', () => {
    expect(parse([], { USHER_LEADER_ELECTION: 'false' }).leaderElection).toBeUndefined();
    expect(parse([], { USHER_LEADER_ELECTION: 'FALSE' }).leaderElection).toBeUndefined();
    expect(parse(['--component', 'accept'], chartEnv).leaderElection).toBeUndefined();
    expect(parse(['--component', 'accept'], chartEnv).podName).toBe('usher-7d9-abcde');
    expect(parse([], { USHER_LEADER_ELECTION: 'true' }).leaderElection).toBeDefined();
  });

  it('outside a pod: the namespace "default" and a unique identity from the host name', () => {
    const a = parse([]).leaderElection;
    const b = parse([]).leaderElection;
    expect(a?.namespace).toBe('default');
    expect(a?.identity).toMatch(/^laptop-[0-9a-f]{6}$/);
    expect(a?.identity).not.toBe(b?.identity);
  });

  it('in a pod without POD_NAMESPACE: the service account’s namespace', () => {
    const io = { ...noPod, readFile: (path: string) => (path === '/var/run/secrets/kubernetes.io/serviceaccount/namespace' ? 'usher-system\n' : '') };
    expect(parse([], {}, io).leaderElection?.namespace).toBe('usher-system');
  });

  it('counts an empty variable as unset', () => {
    const options = parse([], {
      USHER_CONFIG: '',
      LOG_LEVEL: '',
      USHER_METRICS_PORT: '',
      USHER_LEADER_ELECTION: '',
      USHER_LEASE_NAME: '',
      POD_NAME: '',
      POD_NAMESPACE: '',
    });
    expect(options).toMatchObject({ logLevel: 'info', metricsPort: 9090, leaderElection: { namespace: 'default', name: 'usher-leader' } });
    expect(options.configPath).toBeUndefined();
    expect(options.podName).toBeUndefined();
  });

  it('accepts every pino level, and port 0 (any free port, as the benchmarks use)', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) expect(parse([], { LOG_LEVEL: level }).logLevel).toBe(level);
    expect(parse([], { USHER_METRICS_PORT: '0' }).metricsPort).toBe(0);
    expect(parse([], { USHER_METRICS_PORT: '65535' }).metricsPort).toBe(65535);
  });
});

describe('parseRuntimeOptions: problems', () => {
  it.each<[string, string[], NodeJS.ProcessEnv, string]>([
    ['a port that is not a number', [], { USHER_METRICS_PORT: 'abc' }, 'USHER_METRICS_PORT: "abc" is not a port number (1-65535, or 0 for any free port)'],
    ['a port out of range', [], { USHER_METRICS_PORT: '65536' }, 'USHER_METRICS_PORT: "65536" is not a port number (1-65535, or 0 for any free port)'],
    ['a port with a sign or a fraction', [], { USHER_METRICS_PORT: '-1' }, 'USHER_METRICS_PORT: "-1" is not a port number (1-65535, or 0 for any free port)'],
    ['an unknown log level', [], { LOG_LEVEL: 'verbose' }, 'LOG_LEVEL: "verbose" is not one of fatal, error, warn, info, debug, trace, silent'],
    ['a leader-election switch that is not true or false', [], { USHER_LEADER_ELECTION: 'no' }, 'USHER_LEADER_ELECTION: "no" is not true or false'],
    [
      'a Lease name Kubernetes would refuse',
      [],
      { USHER_LEASE_NAME: 'Usher_Leader' },
      "USHER_LEASE_NAME: \"Usher_Leader\" is not a Lease name (lowercase letters, digits, '-' and '.', at most 253)",
    ],
    [
      'a namespace name Kubernetes would refuse',
      [],
      { POD_NAMESPACE: 'Platform' },
      'POD_NAMESPACE: "Platform" is not a namespace name (lowercase letters, digits and \'-\', at most 63)',
    ],
    ['an unknown component', ['--component', 'web'], {}, '--component: "web" is not one of accept, controller, all'],
    ['an unknown flag', ['--confg', 'x.yaml'], {}, '--confg: unknown flag (known: --config, --kubeconfig, --component)'],
    ['a flag without its value', ['--config'], {}, '--config: needs a value'],
    ['a flag with an empty value', ['--kubeconfig='], {}, '--kubeconfig: needs a value'],
    ['a flag followed by another flag', ['--config', '--component', 'all'], {}, '--config: needs a value'],
    ['a single-dash flag', ['-c', 'x.yaml'], {}, '-c: unknown flag (known: --config, --kubeconfig, --component)'],
    ['an argument that is no flag', ['config.yaml'], {}, '"config.yaml": unexpected argument (Usher takes only the flags --config, --kubeconfig, --component)'],
    [
      'an argument after --',
      ['--config', 'a.yaml', '--', 'b.yaml'],
      {},
      '"b.yaml": unexpected argument (Usher takes only the flags --config, --kubeconfig, --component)',
    ],
  ])('%s', (_, argv, env, problem) => {
    expect(problemsOf(argv, env)).toEqual([problem]);
  });

  it('lists every problem at once, and the message is one per line', () => {
    const env = { USHER_METRICS_PORT: 'abc', LOG_LEVEL: 'loud' };
    expect(problemsOf(['--component', 'web'], env)).toEqual([
      '--component: "web" is not one of accept, controller, all',
      'LOG_LEVEL: "loud" is not one of fatal, error, warn, info, debug, trace, silent',
      'USHER_METRICS_PORT: "abc" is not a port number (1-65535, or 0 for any free port)',
    ]);
    expect(() => parse(['--component', 'web'], env)).toThrow(/^--component: .*\nLOG_LEVEL: .*\nUSHER_METRICS_PORT: /);
  });
});

describe('main on bad options', () => {
  const node = join(import.meta.dirname, '..', 'node_modules', '.bin', 'node');
  const main = join(import.meta.dirname, '..', 'src', 'main.ts');

  it('exits 2 with each problem on stderr, before it reads a config or a kubeconfig', async () => {
    const run = promisify(execFile)(node, [main, '--component', 'web', '--kubeconfig', '/nowhere'], {
      env: { PATH: process.env.PATH, USHER_METRICS_PORT: 'abc', USHER_CONFIG: '/nowhere.yaml' },
    });
    await expect(run).rejects.toMatchObject({
      code: 2,
      stdout: '',
      stderr:
        'usher: --component: "web" is not one of accept, controller, all\nusher: USHER_METRICS_PORT: "abc" is not a port number (1-65535, or 0 for any free port)\n',
    });
  }, 30_000);
});
