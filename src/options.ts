// Usher's runtime options: all that main takes from its command line and its
// environment, read and checked here, once, so that nothing below main reads
// process.env. Every bad value is reported at once, each naming its flag or
// variable (`USHER_METRICS_PORT: "abc" is not a port number (1-65535, or 0 for
// any free port)`); main prints them and exits 2, as for an invalid config file.
//
//   --config PATH        (or USHER_CONFIG)  the configuration file; none: all defaults
//   --kubeconfig PATH    (or KUBECONFIG, the pod's service account, ~/.kube/config)
//   --component accept|controller|all (default all)
//   LOG_LEVEL            pino level (default info)
//   USHER_METRICS_PORT   the metrics/health port (default 9090; 0: any free port)
//   USHER_LEADER_ELECTION=false   a single replica, no Lease (default true)
//   USHER_LEASE_NAME, POD_NAMESPACE, POD_NAME   the Lease and this replica's identity in it;
//                        POD_NAME also names the instance reporting Events
// An empty variable counts as unset.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { KubeConfigEnv } from './runtime/client.ts';

export const COMPONENTS = ['accept', 'controller', 'all'] as const;
/** What this process runs: the acceptance page, the controller, or both (the demo, a single replica). */
export type Component = (typeof COMPONENTS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where the Lease is and who this replica is in it. */
export interface LeaderElectionSettings {
  namespace: string;
  name: string;
  identity: string;
}

export interface RuntimeOptions {
  /** The configuration file (--config, else USHER_CONFIG); absent: all defaults. */
  configPath?: string;
  /** For loadKubeConfig: --kubeconfig, else what the environment says (KUBECONFIG, in-cluster). */
  kubeconfig: { path?: string; env: KubeConfigEnv };
  component: Component;
  logLevel: LogLevel;
  /** Port of the metrics and health server; 0 for any free one. */
  metricsPort: number;
  /**
   * Present when this process runs the controller with leader election
   * (USHER_LEADER_ELECTION not false); absent: it reconciles from the start.
   */
  leaderElection?: LeaderElectionSettings;
  /** This pod's name (POD_NAME), the instance reporting Events. */
  podName?: string;
  /** The environment the configuration's passwordEnv and clientSecretEnv name variables of. */
  env: NodeJS.ProcessEnv;
}

/** The command line or environment cannot be used; one problem a line, each naming its flag or variable. */
export class OptionsError extends Error {
  override name = 'OptionsError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/** What parsing reads besides argv and env; replaced in tests. */
export interface OptionsIo {
  /** Reads the service account's namespace file (outside a pod it is absent). */
  readFile: (path: string) => string;
  hostname: () => string;
}

const DEFAULT_IO: OptionsIo = { readFile: (path) => readFileSync(path, 'utf8'), hostname };

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const DEFAULT_METRICS_PORT = 9090;
const DEFAULT_LEASE_NAME = 'usher-leader';
const FLAGS = ['config', 'kubeconfig', 'component'] as const;
type Flag = (typeof FLAGS)[number];

/** Parses `argv` (without node and the script) and `env`; throws OptionsError listing every problem. */
export function parseRuntimeOptions(argv: readonly string[], env: NodeJS.ProcessEnv, io: Partial<OptionsIo> = {}): RuntimeOptions {
  const { readFile, hostname: hostName } = { ...DEFAULT_IO, ...io };
  const problems: string[] = [];
  const flags = parseFlags(argv, problems);
  // An empty variable is an unset one (a chart value left blank, `FOO= cmd`).
  const variable = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);

  const component = oneOf('--component', flags.component ?? 'all', COMPONENTS, problems) ?? 'all';
  const logLevel = oneOf('LOG_LEVEL', variable('LOG_LEVEL') ?? 'info', LOG_LEVELS, problems) ?? 'info';
  const metricsPort = port('USHER_METRICS_PORT', variable('USHER_METRICS_PORT'), problems) ?? DEFAULT_METRICS_PORT;
  const electionOn = bool('USHER_LEADER_ELECTION', variable('USHER_LEADER_ELECTION'), problems) ?? true;
  const leaseName = variable('USHER_LEASE_NAME') ?? DEFAULT_LEASE_NAME;
  if (!isDnsSubdomain(leaseName))
    problems.push(`USHER_LEASE_NAME: ${JSON.stringify(leaseName)} is not a Lease name (lowercase letters, digits, '-' and '.', at most 253)`);
  const podNamespace = variable('POD_NAMESPACE');
  if (podNamespace !== undefined && !isDnsLabel(podNamespace))
    problems.push(`POD_NAMESPACE: ${JSON.stringify(podNamespace)} is not a namespace name (lowercase letters, digits and '-', at most 63)`);
  const podName = variable('POD_NAME');
  if (problems.length > 0) throw new OptionsError(problems);

  const options: RuntimeOptions = {
    kubeconfig: {
      ...(flags.kubeconfig !== undefined && { path: flags.kubeconfig }),
      env: { KUBECONFIG: env.KUBECONFIG, KUBERNETES_SERVICE_HOST: env.KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: env.KUBERNETES_SERVICE_PORT },
    },
    component,
    logLevel,
    metricsPort,
    env,
  };
  const configPath = flags.config ?? variable('USHER_CONFIG');
  if (configPath !== undefined) options.configPath = configPath;
  if (podName !== undefined) options.podName = podName;
  if (component !== 'accept' && electionOn) {
    options.leaderElection = {
      namespace: podNamespace ?? serviceAccountNamespace(readFile) ?? 'default',
      name: leaseName,
      // Outside a pod: unique per process, so two local runs do not both believe they hold the Lease.
      identity: podName ?? `${hostName()}-${randomBytes(3).toString('hex')}`,
    };
  }
  return options;
}

/**
 * `--name value` and `--name=value`, each flag taking a value; a value that
 * starts with "-" only in the second form, so that `--config --component all`
 * is a missing path rather than a config file named "--component".
 */
function parseFlags(argv: readonly string[], problems: string[]): Partial<Record<Flag, string>> {
  const flags: Partial<Record<Flag, string>> = {};
  const known = FLAGS.map((f) => `--${f}`).join(', ');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-') || arg === '-' || arg === '--') {
      // Positional arguments, also after `--`: Usher takes none.
      if (arg !== '--') problems.push(`${JSON.stringify(arg)}: unexpected argument (Usher takes only the flags ${known})`);
      continue;
    }
    const eq = arg.indexOf('=');
    const rawName = eq === -1 ? arg : arg.slice(0, eq);
    const next = argv[i + 1];
    const takesNext = eq === -1 && next !== undefined && !next.startsWith('-');
    let value = eq === -1 ? undefined : arg.slice(eq + 1);
    if (takesNext) {
      value = next;
      i++;
    }
    const flag = FLAGS.find((f) => `--${f}` === rawName);
    if (flag === undefined) problems.push(`${rawName}: unknown flag (known: ${known})`);
    else if (value === undefined || value === '') problems.push(`--${flag}: needs a value`);
    else flags[flag] = value;
  }
  return flags;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[], problems: string[]): T | undefined {
  const found = allowed.find((a) => a === value);
  if (found === undefined) problems.push(`${name}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  return found;
}

function port(name: string, value: string | undefined, problems: string[]): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d{1,5}$/.test(value) && Number(value) <= 65535) return Number(value);
  problems.push(`${name}: ${JSON.stringify(value)} is not a port number (1-65535, or 0 for any free port)`);
  return undefined;
}

function bool(name: string, value: string | undefined, problems: string[]): boolean | undefined {
  if (value === undefined) return undefined;
  if (/^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  problems.push(`${name}: ${JSON.stringify(value)} is not true or false`);
  return undefined;
}

/** The namespace a pod's service account is in; undefined outside a pod. */
function serviceAccountNamespace(readFile: (path: string) => string): string | undefined {
  try {
    return readFile(SERVICE_ACCOUNT_NAMESPACE).trim() || undefined;
  } catch {
    return undefined;
  }
}

const isDnsLabel = (s: string): boolean => s.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s);
const isDnsSubdomain = (s: string): boolean => s.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s);
