// Usher's entry point: load and validate the config, connect to Kubernetes,
// start the controller, and shut down gracefully on SIGTERM/SIGINT.
//
//   node dist/main.js --config /etc/usher/config.yaml [--kubeconfig PATH]
//
// Environment: USHER_CONFIG (config path), KUBECONFIG, LOG_LEVEL (pino level, default info).
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig, parseConfig } from './config/load.ts';
import type { UsherConfig } from './config/types.ts';
import { Controller } from './controller/controller.ts';
import { loadKubeConfig } from './kube/client.ts';
import { createInvitationMailer } from './mail/invitation-mailer.ts';

const log = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { app: 'usher' } });

function readConfig(path: string | undefined): UsherConfig {
  try {
    return path ? loadConfig(path) : parseConfig('', { source: '(defaults)' });
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
  const { values } = parseArgs({
    options: { config: { type: 'string' }, kubeconfig: { type: 'string' } },
    strict: true,
  });
  const config = readConfig(values.config ?? process.env.USHER_CONFIG);
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  const mailer = config.mail ? createInvitationMailer(config.mail, log.child({ component: 'mail' })) : undefined;
  if (!config.mail) log.info('no mail server configured: invitation links are shown in status for manual sharing');

  const controller = new Controller({ kubeConfig, config, log, ...(mailer ? { mailer } : {}) });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight reconciles');
    const hardStop = setTimeout(() => process.exit(1), 25_000);
    hardStop.unref();
    void controller
      .stop()
      .then(() => {
        mailer?.close();
        log.info('stopped');
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });

  await controller.start();
  log.info({ workers: config.controller.workers, baseUrl: config.baseUrl }, 'usher is running');
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'usher failed to start');
  process.exit(1);
});
