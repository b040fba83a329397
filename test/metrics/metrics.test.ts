// The metrics module on its own: what each method records, the gauges
// computed from callbacks at scrape time, and the exposition text Prometheus reads.
import { describe, expect, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import type { InvitationMailer } from '../../src/controller/ports.ts';
import { countByPhase, NO_PHASE, UsherMetrics, withMailMetrics } from '../../src/metrics/metrics.ts';

/** The value of one sample line of the exposition text, e.g. `usher_reconcile_total{result="error"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('UsherMetrics', () => {
  it('counts reconciles by result, errors apart, and times them in a histogram', async () => {
    const metrics = new UsherMetrics({ defaultMetrics: false });
    metrics.observeReconcile(3, 'success');
    metrics.observeReconcile(40, 'success');
    metrics.observeReconcile(200, 'requeue_after');
    metrics.observeReconcile(1500, 'error');
    const text = await metrics.text();
    expect(sample(text, 'usher_reconcile_total{result="success"}')).toBe(2);
    expect(sample(text, 'usher_reconcile_total{result="requeue_after"}')).toBe(1);
    expect(sample(text, 'usher_reconcile_total{result="error"}')).toBe(1);
    expect(sample(text, 'usher_reconcile_errors_total')).toBe(1);
    expect(sample(text, 'usher_reconcile_duration_seconds_count')).toBe(4);
    // Milliseconds in, seconds out.
    expect(sample(text, 'usher_reconcile_duration_seconds_sum')).toBeCloseTo(1.743, 6);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="0.005"}')).toBe(1);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="0.05"}')).toBe(2);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="0.25"}')).toBe(3);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="1"}')).toBe(3);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="2.5"}')).toBe(4);
    expect(sample(text, 'usher_reconcile_duration_seconds_bucket{le="+Inf"}')).toBe(4);
  });

  it('exports every counter series at 0 before anything happened, so rate() works from the first scrape', async () => {
    const text = await new UsherMetrics({ defaultMetrics: false }).text();
    for (const series of [
      'usher_reconcile_total{result="success"}',
      'usher_reconcile_total{result="requeue_after"}',
      'usher_reconcile_total{result="error"}',
      'usher_reconcile_errors_total',
      'usher_mails_sent_total',
      'usher_mails_failed_total{permanent="true"}',
      'usher_mails_failed_total{permanent="false"}',
      'usher_leader',
    ]) {
      expect(sample(text, series), series).toBe(0);
    }
    // With no callback there are no phases to name; a queue that does not exist (yet) is empty.
    expect(text).not.toMatch(/^usher_invitations\{/m);
    expect(sample(text, 'usher_workqueue_depth')).toBe(0);
  });

  it('counts mails sent and failed, permanent failures apart', async () => {
    const metrics = new UsherMetrics({ defaultMetrics: false });
    metrics.mailSent();
    metrics.mailSent();
    metrics.mailFailed(false);
    metrics.mailFailed(false);
    metrics.mailFailed(true);
    const text = await metrics.text();
    expect(sample(text, 'usher_mails_sent_total')).toBe(2);
    expect(sample(text, 'usher_mails_failed_total{permanent="false"}')).toBe(2);
    expect(sample(text, 'usher_mails_failed_total{permanent="true"}')).toBe(1);
  });

  it('reads the invitation and work-queue gauges from the callbacks at each scrape', async () => {
    let counts: Record<string, number> = { Pending: 2, Sent: 1 };
    let depth = 7;
    const metrics = new UsherMetrics({ defaultMetrics: false, invitationsByPhase: () => counts, workqueueDepth: () => depth });
    let text = await metrics.text();
    expect(sample(text, 'usher_invitations{phase="Pending"}')).toBe(2);
    expect(sample(text, 'usher_invitations{phase="Sent"}')).toBe(1);
    // Phases nobody is in are exported as 0, not left out.
    expect(sample(text, 'usher_invitations{phase="Accepted"}')).toBe(0);
    expect(sample(text, `usher_invitations{phase="${NO_PHASE}"}`)).toBe(0);
    expect(sample(text, 'usher_workqueue_depth')).toBe(7);

    counts = { Accepted: 3 };
    depth = 0;
    text = await metrics.text();
    expect(sample(text, 'usher_invitations{phase="Pending"}')).toBe(0);
    expect(sample(text, 'usher_invitations{phase="Accepted"}')).toBe(3);
    expect(sample(text, 'usher_workqueue_depth')).toBe(0);
  });

  it('keeps the scrape working when a callback throws, leaving that gauge empty', async () => {
    const metrics = new UsherMetrics({
      defaultMetrics: false,
      invitationsByPhase: () => {
        throw new Error('cache gone');
      },
      workqueueDepth: () => 4,
    });
    metrics.observeReconcile(1, 'success');
    const text = await metrics.text();
    expect(text).not.toMatch(/^usher_invitations\{/m);
    expect(sample(text, 'usher_workqueue_depth')).toBe(4);
    expect(sample(text, 'usher_reconcile_total{result="success"}')).toBe(1);
  });

  it('takes callbacks set after construction, for a controller created later', async () => {
    const metrics = new UsherMetrics({ defaultMetrics: false });
    metrics.setSources({ workqueueDepth: () => 3, invitationsByPhase: () => ({ Failed: 1 }) });
    metrics.setLeader(true);
    const text = await metrics.text();
    expect(sample(text, 'usher_workqueue_depth')).toBe(3);
    expect(sample(text, 'usher_invitations{phase="Failed"}')).toBe(1);
    expect(sample(text, 'usher_leader')).toBe(1);
    metrics.setLeader(false);
    expect(sample(await metrics.text(), 'usher_leader')).toBe(0);
  });

  it('adds the default process metrics, and each instance has a registry of its own', async () => {
    const a = new UsherMetrics();
    const b = new UsherMetrics();
    a.mailSent();
    const text = await a.text();
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    expect(sample(text, 'usher_mails_sent_total')).toBe(1);
    expect(sample(await b.text(), 'usher_mails_sent_total')).toBe(0);
    expect(text).toContain('# HELP usher_reconcile_duration_seconds How long one reconcile of a UserInvitation took.');
    expect(text).toContain('# TYPE usher_reconcile_duration_seconds histogram');
  });
});

describe('countByPhase', () => {
  it('counts invitations by status.phase, those without a status under None', () => {
    expect(countByPhase([{ status: { phase: 'Sent' } }, { status: { phase: 'Sent' } }, { status: {} }, {}, { status: { phase: 'Accepted' } }])).toEqual({
      Sent: 2,
      Accepted: 1,
      [NO_PHASE]: 2,
    });
    expect(countByPhase([])).toEqual({});
  });
});

describe('withMailMetrics', () => {
  it('counts what the mailer reports, passes results and errors through unchanged', async () => {
    const metrics = new UsherMetrics({ defaultMetrics: false });
    const outcomes: (Awaited<ReturnType<InvitationMailer['sendInvitation']>> | Error)[] = [
      { ok: true },
      { ok: false, permanent: true, response: '550 no such user' },
      { ok: false, permanent: false, response: '421 try later' },
      new Error('connection reset'),
      { ok: true },
    ];
    const calls: unknown[][] = [];
    const mailer = withMailMetrics(
      {
        sendInvitation: (...args) => {
          calls.push(args);
          const next = outcomes.shift();
          return next instanceof Error ? Promise.reject(next) : Promise.resolve(next ?? { ok: true });
        },
      },
      metrics,
    );
    const invitation = { metadata: { name: 'x' } } as UserInvitation;
    const expiresAt = new Date();
    expect(await mailer.sendInvitation(invitation, 'https://l', expiresAt)).toEqual({ ok: true });
    expect(await mailer.sendInvitation(invitation, 'https://l', expiresAt)).toEqual({ ok: false, permanent: true, response: '550 no such user' });
    await mailer.sendInvitation(invitation, 'https://l', expiresAt);
    await expect(mailer.sendInvitation(invitation, 'https://l', expiresAt)).rejects.toThrow('connection reset');
    await mailer.sendInvitation(invitation, 'https://l', expiresAt);
    expect(calls[0]).toEqual([invitation, 'https://l', expiresAt]);
    const text = await metrics.text();
    expect(sample(text, 'usher_mails_sent_total')).toBe(2);
    expect(sample(text, 'usher_mails_failed_total{permanent="true"}')).toBe(1);
    expect(sample(text, 'usher_mails_failed_total{permanent="false"}')).toBe(2);
  });

  it('passes the outage watch through (lastOutage, onRecovered): the controller hears through it that the mail server is back', () => {
    const outage = { from: new Date(1), to: new Date(2) };
    const listeners: (() => void)[] = [];
    const mailer = withMailMetrics(
      {
        sendInvitation: () => Promise.resolve({ ok: true as const }),
        lastOutage: () => outage,
        onRecovered: (listener) =>
          listeners.push(() => {
            listener(outage);
          }),
      },
      new UsherMetrics({ defaultMetrics: false }),
    );
    expect(mailer.lastOutage?.()).toBe(outage);
    let told = 0;
    mailer.onRecovered?.(() => told++);
    for (const listener of listeners) listener();
    expect(told).toBe(1);
  });
});
