// Headers on every response. The CSP allows nothing but this app's own
// stylesheet and icon (no scripts at all), forms only to this origin (plus the
// SSO provider on the page that sends people there), and no framing.
import type { FastifyReply } from 'fastify';

const CSP_BASE = ["default-src 'none'", "style-src 'self'", "img-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"];

/** The page's CSP; `formTargets` are the origins a form may lead to besides this one (the SSO provider's). */
export function contentSecurityPolicy(formTargets: readonly string[] = []): string {
  return [...CSP_BASE, ["form-action 'self'", ...formTargets].join(' ')].join('; ');
}

export function securityHeaders(reply: FastifyReply, https: boolean): void {
  reply.headers({
    'content-security-policy': contentSecurityPolicy(),
    // The URL holds the token: it must not leak to the sites linked from the page (the sign-in page, the provider).
    'referrer-policy': 'no-referrer',
    // Pages hold a CSRF token and the invitation's details: not for shared caches or the back button.
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    ...(https ? { 'strict-transport-security': 'max-age=31536000' } : {}),
  });
}
