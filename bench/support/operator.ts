// The operator as a separate process, as it runs in a pod: `node src/main.ts
// --config FILE --kubeconfig FILE`, with leader election on (a Lease of its
// own per control plane), its acceptance page and metrics server on free
// ports. Its JSON log lines are read as they come, its RSS from /proc, its
// memory figures from its own /metrics; for the memory benchmark only, a
// preloaded probe lets the bench force a full GC first (over IPC).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { cpuSeconds, root } from './plane.ts';

export interface OperatorOptions {
  kubeconfig: string;
  /** Mail server port on 127.0.0.1; no mail config when absent. */
  smtpPort?: number;
  /** Extra YAML lines under `usher:` (indented by two spaces already). */
  extraConfig?: string[];
  workers?: number;
  logLevel?: string;
  /** Folder of the operator's src/main.ts (default this checkout), to compare builds side by side. */
  operatorRoot?: string;
  /** Write a V8 CPU profile into this folder when the process exits. */
  cpuProfDir?: string;
  /** Preload the memory probe (and --expose-gc). */
  memoryProbe?: boolean;
  /** Leader election (on by default, as the chart runs it). */
  leaderElection?: boolean;
  /** Append the operator's log (stdout, JSON lines) to this file. */
  logFile?: string;
  /** usher.baseUrl (https://usher.bench.example): the page's links and SSO redirect start with it. */
  baseUrl?: string;
  /** The acceptance page's port (a free one when absent). */
  acceptPort?: number;
  /** Extra YAML lines under `usher.accept:` (indented by four spaces already). */
  acceptConfig?: string[];
}

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [key: string]: unknown;
}

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export interface Operator {
  child: ChildProcess;
  pid: number;
  /** performance.now() at spawn. */
  spawnedAt: number;
  /** Resolves with performance.now() when the controller runs: it leads, its caches synced, its workers started. */
  running: Promise<number>;
  /** Port of its metrics server (known once running). */
  metricsPort: number;
  /** Port of its acceptance page (on all interfaces). */
  acceptPort: number;
  /** Resolves when the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Log lines counted by msg. */
  counts: Map<string, number>;
  /** Lines at warn level or above (kept, for reports). */
  problems: LogLine[];
  onLine: ((line: LogLine) => void) | undefined;
  /** Last lines of stderr (crash reports). */
  stderr(): string;
  /** CPU seconds used so far (user + system). */
  cpuSeconds(): number;
  /** VmRSS from /proc/PID/status, in bytes. */
  rss(): number;
  /** Memory figures from its /metrics (prom-client's process and heap gauges), after a full GC when memoryProbe is on. */
  memory(): Promise<MemoryUsage>;
  /** One metric's value from its /metrics (summed over labels). */
  metric(name: string): Promise<number>;
  /** SIGTERM and wait (graceful shutdown). */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export function configYaml(options: OperatorOptions & { acceptPort?: number }): string {
  const lines = ['usher:', `  baseUrl: ${options.baseUrl ?? 'https://usher.bench.example'}`];
  if (options.acceptPort !== undefined) lines.push('  accept:', `    port: ${options.acceptPort}`, ...(options.acceptConfig ?? []));
  if (options.smtpPort !== undefined) {
    lines.push('  mail:', '    host: 127.0.0.1', `    port: ${options.smtpPort}`, '    tls: none', '    from: "Usher bench <usher@bench.example>"');
  }
  if (options.workers !== undefined) lines.push('  controller:', `    workers: ${options.workers}`);
  lines.push(...(options.extraConfig ?? []), '');
  return lines.join('\n');
}

let instances = 0;

export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const dir = mkdtempSync(join(tmpdir(), 'usher-bench-op-'));
  const configPath = join(dir, 'usher.yaml');
  const acceptPort = options.acceptPort ?? (await freePort());
  writeFileSync(configPath, configYaml({ ...options, acceptPort }));
  const opRoot = options.operatorRoot ?? root;
  const nodeArgs: string[] = [];
  if (options.cpuProfDir) {
    mkdirSync(options.cpuProfDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
  }
  if (options.memoryProbe) nodeArgs.push('--expose-gc', '--import', join(root, 'bench', 'support', 'memory-probe.ts'));
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, join(opRoot, 'src', 'main.ts'), '--config', configPath, '--kubeconfig', options.kubeconfig], {
    stdio: ['ignore', 'pipe', 'pipe', ...(options.memoryProbe ? (['ipc'] as const) : [])],
    env: {
      ...process.env,
      LOG_LEVEL: options.logLevel ?? 'info',
      USHER_METRICS_PORT: '0',
      USHER_LEADER_ELECTION: options.leaderElection === false ? 'false' : 'true',
      POD_NAME: `usher-bench-${process.pid}-${instances++}`,
      POD_NAMESPACE: 'default',
      // Node options for the operator only (e.g. --max-semi-space-size=1), added to any the bench's process has.
      ...(process.env.USHER_BENCH_OPERATOR_NODE_OPTIONS
        ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${process.env.USHER_BENCH_OPERATOR_NODE_OPTIONS}`.trim() }
        : {}),
    },
    cwd: opRoot,
  });
  const pid = child.pid ?? 0;
  const counts = new Map<string, number>();
  const problems: LogLine[] = [];
  let stderrTail = '';
  const { promise: running, resolve: resolveRunning, reject: rejectRunning } = Promise.withResolvers<number>();
  running.catch(() => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      rejectRunning(new Error(`operator exited (${code ?? signal ?? '?'}) before it was running:\n${stderrTail}`));
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal });
    });
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-8000);
  });
  const op: Operator = {
    child,
    pid,
    spawnedAt,
    running,
    exited,
    counts,
    problems,
    onLine: undefined,
    stderr: () => stderrTail,
    cpuSeconds: () => cpuSeconds(pid),
    metricsPort: 0,
    acceptPort,
    rss() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      return Number(kb ?? 0) * 1024;
    },
    async metric(name: string) {
      const text = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
      let total = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return total;
    },
    async memory() {
      if (options.memoryProbe) await gc(child);
      return {
        rss: await op.metric('process_resident_memory_bytes'),
        heapUsed: await op.metric('nodejs_heap_size_used_bytes'),
        heapTotal: await op.metric('nodejs_heap_size_total_bytes'),
        external: await op.metric('nodejs_external_memory_bytes'),
      };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  if (child.stdout) {
    const logFile = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    createInterface({ input: child.stdout }).on('line', (text) => {
      logFile?.write(`${text}\n`);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      counts.set(line.msg, (counts.get(line.msg) ?? 0) + 1);
      if (line.level >= 40) problems.push(line);
      if (line.msg === 'usher is up' && typeof line.metricsPort === 'number') op.metricsPort = line.metricsPort;
      // 'usher is running': the entry point before leader election and metrics (older checkouts, --operator-root).
      if (line.msg === 'controller running' || line.msg === 'usher is running') resolveRunning(performance.now());
      op.onLine?.(line);
    });
  }
  // Should the bench die, its operator goes with it.
  const onExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', onExit);
  void exited.then(() => process.off('exit', onExit));
  return op;
}

/** Asks the memory probe for two full garbage collections. */
function gc(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!child.connected) {
      reject(new Error('operator started without memoryProbe'));
      return;
    }
    const onMessage = (message: unknown): void => {
      if ((message as { gc?: unknown }).gc === undefined) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
    child.send('gc');
  });
}

/** `n` problems summarised as "msg ×count" (warn and above). */
export function summariseProblems(problems: readonly LogLine[]): string {
  const by = new Map<string, number>();
  for (const p of problems) by.set(p.msg, (by.get(p.msg) ?? 0) + 1);
  return [...by].map(([msg, n]) => `${msg} ×${n}`).join('; ') || 'none';
}
