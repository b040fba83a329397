// The rules an invitation must pass before anything is issued for it, shared
// by the controller's decide() and the acceptance page's link-state policy.
// Pure: no I/O, no clock.
import { isNfc, isValidEmail } from './email.ts';
import type { UserInvitation } from '../api/types.ts';
import { parseDuration } from '../config/duration.ts';
import type { UsherConfig } from '../config/types.ts';

/** Who may invite whom: a namespace may invite only into its own tenant; Instance scope only from configured namespaces. */
export function forbiddenReason(invitation: UserInvitation, namespaceTenant: string | undefined, config: UsherConfig): string | undefined {
  const { spec, metadata } = invitation;
  const namespace = metadata.namespace ?? '';
  const label = config.tenancy.namespaceLabel;
  if ((spec.scope ?? 'Tenant') === 'Instance') {
    if (config.tenancy.instanceNamespaces.includes(namespace)) return undefined;
    return `Instance-scope invitations are only accepted from the namespaces in usher.tenancy.instanceNamespaces, and ${namespace} is not one of them.`;
  }
  if (namespaceTenant === undefined) return `Namespace ${namespace} has no ${label} label, so it may not invite into tenant ${spec.tenant ?? ''}.`;
  if (namespaceTenant !== spec.tenant)
    return `Namespace ${namespace} belongs to tenant ${namespaceTenant} (label ${label}), so it may only invite into ${namespaceTenant}, not ${spec.tenant ?? ''}.`;
  return undefined;
}

/** Problems the API server cannot see because they depend on Usher's config; each names the field. */
export function invalidReason(invitation: UserInvitation, config: UsherConfig): string | undefined {
  const { spec } = invitation;
  if (!isValidEmail(spec.email)) return `spec.email: ${JSON.stringify(spec.email)} is not a single email address.`;
  if (!isNfc(spec.email)) {
    return `spec.email: ${JSON.stringify(spec.email)} is not in Unicode normal form C (it would read as ${JSON.stringify(spec.email.normalize('NFC'))}); write the address in that form, so that it names one mailbox.`;
  }
  if (config.invitations.requireGroupOrRole && !spec.createUserDirectly && !spec.groups?.length && !spec.roles?.length) {
    return 'spec.groups, spec.roles: an invitation must grant at least one group or role (usher.security.invitations.requireGroupOrRole).';
  }
  if (spec.expireAfter !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(spec.expireAfter);
    } catch (err) {
      return `spec.expireAfter: ${(err as Error).message}`;
    }
    if (ms > config.invitations.maxExpireAfterMs) {
      return `spec.expireAfter: ${spec.expireAfter} is longer than the maximum ${config.invitations.maxExpireAfter} (usher.security.invitations.maxExpireAfter).`;
    }
  }
  return undefined;
}
