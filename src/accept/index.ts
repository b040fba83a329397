// The acceptance page: where an invited person opens their link, sees what
// they are invited to, and becomes a User (with a password, or through SSO).
export { createAcceptServer, type AcceptServer, type AcceptServerDeps } from './server.ts';
