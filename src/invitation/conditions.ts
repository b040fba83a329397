// Conditions per the Kubernetes API conventions: one entry per type, and
// lastTransitionTime moves only when the status value changes, so a reconcile
// that finds nothing new computes a status equal to the stored one.
import type { Condition, ConditionStatus } from '../api/types.ts';
import { isoSeconds } from './time.ts';

export const READY = 'Ready';
export const RECONCILING = 'Reconciling';
export const STALLED = 'Stalled';
export const MAIL_DELIVERED = 'MailDelivered';

export interface DesiredCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  generation: number | undefined,
  now: Date,
): Condition[] {
  return desired.map((want) => {
    const had = existing?.find((c) => c.type === want.type);
    const lastTransitionTime = had && had.status === want.status ? had.lastTransitionTime : isoSeconds(now);
    return {
      type: want.type,
      status: want.status,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime,
      reason: want.reason,
      message: want.message,
    };
  });
}

/** Ready plus the kstatus pair (Reconciling, Stalled) that Flux and Argo CD read. */
export function readiness(state: 'ready' | 'progressing' | 'stalled', reason: string, message: string): DesiredCondition[] {
  return [
    { type: READY, status: state === 'ready' ? 'True' : 'False', reason, message },
    {
      type: RECONCILING,
      status: state === 'progressing' ? 'True' : 'False',
      reason: state === 'progressing' ? reason : 'Settled',
      message: state === 'progressing' ? message : 'Nothing in progress.',
    },
    {
      type: STALLED,
      status: state === 'stalled' ? 'True' : 'False',
      reason: state === 'stalled' ? reason : 'NotStalled',
      message: state === 'stalled' ? message : 'No intervention needed.',
    },
  ];
}
