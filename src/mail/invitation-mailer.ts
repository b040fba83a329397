// The controller's mailer: renders an invitation with the (possibly
// operator-supplied) templates and sends it through the SMTP transport.
import { displayEmail, normalizeEmail } from '../invitation/email.ts';
import type { UserInvitation } from '../api/types.ts';
import type { MailConfig } from '../config/types.ts';
import type { InvitationMailer } from '../controller/ports.ts';
import { loadTemplates, renderInvitationMail } from './message.ts';
import { MailOutageWatch } from './outage.ts';
import { createMailer, type MailLog, type MailTimeouts } from './transport.ts';

export interface InvitationMailerHandle extends InvitationMailer {
  close(): void;
}

/** Templates are loaded (and checked) here, at start-up: a broken one stops Usher with a clear error. */
export function createInvitationMailer(
  config: MailConfig,
  log?: MailLog,
  options: { timeouts?: Partial<MailTimeouts>; platformName?: string; outageProbeIntervalMs?: number } = {},
): InvitationMailerHandle {
  const templates = loadTemplates(config.templatesDir);
  const mailer = createMailer(config, log, options.timeouts ? { timeouts: options.timeouts } : {});
  const outages = new MailOutageWatch({
    probe: () => mailer.verify(),
    ...(options.outageProbeIntervalMs !== undefined ? { intervalMs: options.outageProbeIntervalMs } : {}),
    ...(log
      ? {
          log: {
            info: (obj, msg) => {
              log.warn(obj, msg);
            },
            debug: (obj, msg) => {
              log.debug(obj, msg);
            },
          },
        }
      : {}),
  });
  return {
    lastOutage: () => outages.lastOutage(),
    onRecovered: (listener) => {
      outages.onRecovered(listener);
    },
    async sendInvitation(invitation: UserInvitation, link: string, expiresAt: Date) {
      const { spec } = invitation;
      // Sent to the address's one form (an internationalised domain in ASCII), shown as people read it.
      const email = normalizeEmail(spec.email);
      let message;
      try {
        message = renderInvitationMail(
          {
            email: displayEmail(spec.email),
            scope: spec.scope ?? 'Tenant',
            ...(spec.tenant ? { tenant: spec.tenant } : {}),
            groups: spec.groups ?? [],
            roles: spec.roles ?? [],
            link,
            expiresAt,
            now: new Date(),
            ...(options.platformName ? { platformName: options.platformName } : {}),
          },
          templates,
        );
      } catch (err) {
        // Only reachable when the invitation expired between decide() and here:
        // report a transient failure and let the next reconcile mark it Expired.
        return { ok: false as const, permanent: false, response: (err as Error).message };
      }
      const result = await mailer.send({ to: email, ...message });
      if (result.ok) outages.succeeded();
      else if (!result.permanent) outages.failed();
      return result.ok ? { ok: true as const } : { ok: false as const, permanent: result.permanent, response: result.response };
    },
    close: () => {
      outages.close();
      mailer.close();
    },
  };
}
