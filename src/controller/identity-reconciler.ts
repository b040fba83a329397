// One reconcile of one User against the identity provider (usher.identity):
// read the User (cache) and its account (one lookup by email), plan
// (planAccount, pure), act, and write the User's status only when it changed.
// Level-triggered like the invitation reconciler: a crash between steps leaves
// a world the next reconcile reads and finishes (an account created but not yet
// in its groups is found by email, carries this User's uid, and gets them).
//
// Why the controller and not the acceptance page: the page is internet-facing,
// and the admin credentials of the realm must not live there (docs/adr/0006).
// The page writes the User and its password hash; this turns them into an
// account, retrying until Provisioned while the provider is down.
import type { Logger } from 'pino';
import type { User, UserIdentityStatus, UserStatus } from '../api/types.ts';
import type { IdentityConfig } from '../config/types.ts';
import { IdentityProviderError, type IdentityAccount, type IdentityProvider } from '../identity/provider.ts';
import { accountStatus, failedStatus, IDENTITY_FINALIZER, planAccount, PROVISIONED, type AccountPlan, type AccountStep } from '../invitation/identity.ts';
import { ACCEPTING_RECORD_ANNOTATION } from '../invitation/users.ts';
import type { UserStore } from './ports.ts';
import { sameStatus, type ReconcileResult } from './reconciler.ts';

export interface IdentityReconcilerDeps {
  store: UserStore;
  provider: IdentityProvider;
  config: IdentityConfig;
  log: Logger;
  now?: () => Date;
}

/** A provisional User whose record is gone is a rolled-back acceptance, unless it is older than any acceptance lasts. */
const STALE_PROVISIONAL_MS = 5 * 60_000;
/** How long to wait before trying again after the provider refused (a misconfiguration someone must fix). */
const REFUSED_RETRY_MS = 60_000;

export class IdentityReconciler {
  private readonly deps: IdentityReconcilerDeps;

  constructor(deps: IdentityReconcilerDeps) {
    this.deps = deps;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const { store, provider, log } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    const user = store.user(name);
    if (!user) return {};
    try {
      const accepting = this.accepting(user, now());
      // While an acceptance is still writing the User there is nothing to ask the provider (it waits either way).
      const account = accepting && !user.metadata.deletionTimestamp ? undefined : await provider.findByEmail(user.spec.email);
      const needsHash = !accepting && !account && user.spec.authentication === 'Password' && !user.metadata.deletionTimestamp;
      const passwordHash = needsHash ? await store.passwordHash(name) : undefined;
      const plan = planAccount({
        user,
        account,
        hasPasswordHash: passwordHash !== undefined,
        accepting,
        onUserDelete: this.deps.config.onUserDelete,
      });
      const { user: after, account: final } = await this.act(user, plan, account, passwordHash);
      if (!after || after.metadata.deletionTimestamp) return {};
      await this.writeStatusIfChanged(after, accountStatus(after, plan, identityOf(provider.name, plan, final), now()));
      return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
    } catch (err) {
      if (!(err instanceof IdentityProviderError)) throw err;
      const latest = store.user(name) ?? user;
      if (latest.metadata.deletionTimestamp) throw err;
      const reason = err.retryable ? 'ProviderUnavailable' : 'ProviderRefused';
      await this.writeStatusIfChanged(latest, failedStatus(latest, reason, err.message, now())).catch(() => undefined);
      if (err.retryable) throw err;
      log.warn({ user: name, err: err.message }, 'the identity provider refused a request; retrying in a minute');
      return { requeueAfterMs: REFUSED_RETRY_MS };
    }
  }

  /** Performs the plan's steps in order; returns the User as last written (undefined once its finalizer is off) and the account. */
  private async act(
    user: User,
    plan: AccountPlan,
    found: IdentityAccount | undefined,
    passwordHash: string | undefined,
  ): Promise<{ user: User | undefined; account: IdentityAccount | undefined }> {
    const { store, provider, log } = this.deps;
    let current: User | undefined = user;
    let account = found;
    for (const step of plan.steps) {
      if (!current) break;
      switch (step.kind) {
        case 'addFinalizer':
          // Before anything exists at the provider, so that a User deleted from here on releases it.
          current = await store.saveUser(withFinalizers(current, [...(current.metadata.finalizers ?? []), IDENTITY_FINALIZER]));
          break;
        case 'removeFinalizer':
          await store.saveUser(
            withFinalizers(
              current,
              (current.metadata.finalizers ?? []).filter((f) => f !== IDENTITY_FINALIZER),
            ),
          );
          current = undefined;
          break;
        case 'create':
          account = await provider.create({
            email: current.spec.email,
            ...(current.spec.firstName ? { firstName: current.spec.firstName } : {}),
            ...(current.spec.lastName ? { lastName: current.spec.lastName } : {}),
            emailVerified: current.spec.emailVerified ?? false,
            usherUserUid: current.metadata.uid ?? '',
            ...(step.withPassword && passwordHash !== undefined ? { passwordHash } : {}),
            groups: step.access.groups,
            roles: step.access.roles,
          });
          store.userEvent(
            current,
            'Normal',
            'AccountCreated',
            `Created ${provider.name} account ${account.username} with groups ${listed(step.access.groups)}.`,
          );
          log.info({ user: current.metadata.name, account: account.id }, 'created the identity provider account');
          break;
        default:
          if (!account) break;
          await this.release(current, account, step);
      }
    }
    return { user: current, account };
  }

  /** setAccess, disable, delete: steps on an account that exists. */
  private async release(
    user: User,
    account: IdentityAccount,
    step: Exclude<AccountStep, { kind: 'addFinalizer' | 'removeFinalizer' | 'create' }>,
  ): Promise<void> {
    const { store, provider, log } = this.deps;
    const subject = { user: user.metadata.name, account: account.id };
    switch (step.kind) {
      case 'setAccess':
        await provider.setAccess(account.id, step.access.groups, step.access.roles);
        store.userEvent(
          user,
          'Normal',
          'AccessUpdated',
          `${provider.name} account ${account.username} now has groups ${listed(step.access.groups)} and roles ${listed(step.access.roles)}.`,
        );
        log.info({ ...subject, groups: step.access.groups.length, roles: step.access.roles.length }, 'updated the account\u2019s groups and roles');
        break;
      case 'disable':
        await provider.setEnabled(account.id, false);
        store.userEvent(user, 'Normal', 'AccountDisabled', `Disabled ${provider.name} account ${account.username}: its User was deleted.`);
        log.info(subject, 'disabled the account of a deleted User');
        break;
      case 'delete':
        await provider.remove(account.id);
        store.userEvent(user, 'Normal', 'AccountDeleted', `Deleted ${provider.name} account ${account.username}: its User was deleted.`);
        log.info(subject, 'deleted the account of a deleted User');
        break;
    }
  }

  /** Whether an acceptance is still writing this User: it is provisional and its record is not used yet. */
  private accepting(user: User, now: Date): boolean {
    const recordName = user.metadata.annotations?.[ACCEPTING_RECORD_ANNOTATION];
    if (recordName === undefined) return false;
    const record = this.deps.store.record(recordName);
    if (record) return !(record.usedAt !== undefined && record.user === user.metadata.name);
    const age = now.getTime() - Date.parse(user.metadata.creationTimestamp ?? now.toISOString());
    return age < STALE_PROVISIONAL_MS;
  }

  private async writeStatusIfChanged(user: User, status: UserStatus): Promise<void> {
    const previous = user.status ?? {};
    if (sameStatus(previous, status)) return;
    await this.deps.store.writeUserStatus(user, status);
    const before = previous.conditions?.find((c) => c.type === PROVISIONED);
    const after = status.conditions?.find((c) => c.type === PROVISIONED);
    if (after && (before?.status !== after.status || before.reason !== after.reason)) {
      const type = after.status === 'True' || after.reason === 'AcceptanceInProgress' || after.reason === 'WaitingForPassword' ? 'Normal' : 'Warning';
      this.deps.store.userEvent(user, type, after.status === 'True' ? 'Provisioned' : after.reason, after.message);
    }
  }
}

function identityOf(provider: string, plan: AccountPlan, account: IdentityAccount | undefined): UserIdentityStatus | undefined {
  if (!account || !plan.account) return undefined;
  return { provider, id: account.id, username: account.username, managed: plan.account.managed };
}

function withFinalizers(user: User, finalizers: string[]): User {
  return { ...user, metadata: { ...user.metadata, finalizers } };
}

function listed(values: readonly string[]): string {
  return values.length === 0 ? '(none)' : values.join(', ');
}
