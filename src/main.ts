// Usher's entry point: load and validate the config, then run, by --component:
//   - accept: the acceptance page (internet-facing; its own Deployment and
//     ServiceAccount in the chart, with no cluster-wide Secrets rights),
//   - controller: the controller (only the replica holding the leader-election Lease),
//   - all (default): both in one process (the demo, a single replica),
// and in every case the metrics/health server.
// SIGTERM/SIGINT shut down gracefully: in-flight reconciles finish and the Lease
// is released so a standby takes over at once.
//
//   node dist/main.js --config /etc/usher/config.yaml [--kubeconfig PATH] [--component accept|controller|all]
//
// Flags and environment (USHER_CONFIG, KUBECONFIG, LOG_LEVEL, USHER_METRICS_PORT,
// USHER_LEADER_ELECTION, USHER_LEASE_NAME, POD_NAME, POD_NAMESPACE) are read
// into one options object (src/options.ts): this file is the only reader of
// process.env and argv, and a bad value exits 2 naming it.
import { pino } from 'pino';
import { createAcceptServer } from './accept/index.ts';
import { ConfigError, loadConfig, parseConfig } from './config/load.ts';
import type { UsherConfig } from './config/types.ts';
import { Controller } from './controller/controller.ts';
import { loadKubeConfig } from './runtime/client.ts';
import { LeaderElector } from './runtime/leader-election.ts';
import { createInvitationMailer } from './mail/invitation-mailer.ts';
import { UsherMetrics, withMailMetrics } from './metrics/metrics.ts';
import { startMetricsServer } from './metrics/server.ts';
import { OptionsError, parseRuntimeOptions, type RuntimeOptions } from './options.ts';
import { RestClient } from './runtime/rest-client.ts';
import { createKeycloakProvider } from './identity/keycloak.ts';
import { PeriodicProbe } from './runtime/probe.ts';

function readOptions(): RuntimeOptions {
  try {
    return parseRuntimeOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(err.problems.map((p) => `usher: ${p}\n`).join(''));
      process.exit(2);
    }
    throw err;
  }
}

const options = readOptions();
const log = pino({ level: options.logLevel, base: { app: 'usher' } });

function readConfig(path: string | undefined, env: NodeJS.ProcessEnv, component: RuntimeOptions['component']): UsherConfig {
  try {
    return path ? loadConfig(path, env, component) : parseConfig('', { source: '(defaults)', env, component });
  } catch (err) {
    if (err instanceof ConfigError) {
      // Plain text on stderr, not JSON: this is for the human reading the pod's crash log.
      process.stderr.write(`usher: invalid configuration\n${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const { component, leaderElection: election } = options;
  const runsPage = component !== 'controller';
  const runsController = component !== 'accept';
  const config = readConfig(options.configPath, options.env, component);
  const kubeConfig = loadKubeConfig(options.kubeconfig.path, options.kubeconfig.env);
  // One API client, with one pool of keep-alive connections, for the whole process.
  const rest = new RestClient(kubeConfig);
  const metrics = new UsherMetrics();
  const mailer = config.mail ? createInvitationMailer(config.mail, log.child({ component: 'mail' })) : undefined;
  if (!config.mail) log.info('no mail server configured: invitation links are shown in status for manual sharing');

  // Only the controller talks to the identity provider (the page never holds its credentials: docs/adr/0006).
  const identity = runsController && config.identity ? createKeycloakProvider(config.identity.keycloak, log.child({ component: 'keycloak' })) : undefined;
  const identityProbe = identity ? new PeriodicProbe({ check: () => identity.check(), log, what: 'the identity provider' }) : undefined;

  const controller = new Controller({
    kubeConfig,
    config,
    log,
    metrics,
    rest,
    ...(options.podName !== undefined ? { instance: options.podName } : {}),
    ...(mailer ? { mailer: withMailMetrics(mailer, metrics) } : {}),
    ...(identity ? { identity } : {}),
  });
  metrics.setSources({ invitationsByPhase: () => controller.invitationsByPhase(), workqueueDepth: () => controller.queueDepth() });

  let leading = false;
  let stopping = false;
  // Ready means "can serve": a standby serves the acceptance page, so its readiness must not
  // wait for a Lease it may never get (a rollout would stall on it).
  const accept = runsPage ? createAcceptServer({ kubeConfig, config, log, rest }) : undefined;
  const metricsServer = await startMetricsServer({
    metrics,
    port: options.metricsPort,
    ready: () => {
      if (!(accept?.ready() ?? true) || (leading && !controller.synced())) return false;
      const provider = identityProbe?.current;
      // Not a crash loop: the controller keeps retrying, and the probe says what is wrong.
      return provider && !provider.ok ? `identity provider: ${provider.reason}` : true;
    },
  });
  if (identityProbe) void identityProbe.start();
  const acceptUrl = accept ? await accept.listen(config.accept.port) : undefined;

  const startController = async (): Promise<void> => {
    leading = true;
    metrics.setLeader(true);
    await controller.start();
    log.info({ workers: config.controller.workers, baseUrl: config.baseUrl }, 'controller running');
  };
  const elector = election
    ? new LeaderElector({
        kubeConfig,
        // A client of its own, not the shared pool: a renewal must not wait behind a burst of reconciles or relists.
        rest: new RestClient(kubeConfig, { maxSockets: 2 }),
        namespace: election.namespace,
        name: election.name,
        identity: election.identity,
        log: log.child({ component: 'leader-election' }),
        onStartedLeading: () => {
          void startController();
        },
        onStoppedLeading: () => {
          metrics.setLeader(false);
          // As controller-runtime does: a replica that lost its Lease must stop reconciling at once.
          if (!stopping) {
            log.error('lost the leader-election lease; exiting so a fresh replica can stand by');
            process.exit(1);
          }
        },
      })
    : undefined;

  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight reconciles');
    const hardStop = setTimeout(() => process.exit(1), 25_000);
    hardStop.unref();
    void (async () => {
      await controller.stop();
      await identityProbe?.stop();
      await elector?.stop();
      await Promise.all([accept?.close(), metricsServer.close()]);
      mailer?.close();
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });

  log.info(
    { component, acceptUrl, metricsPort: metricsServer.port, leaderElection: election ? `${election.namespace}/${election.name}` : 'off' },
    'usher is up',
  );
  if (elector) void elector.run();
  else if (runsController) await startController();
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'usher failed to start');
  process.exit(1);
});
