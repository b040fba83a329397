// A local mail catcher for the demo: an SMTP server that keeps every message
// in memory and a small web page to read them as the invitee would see them.
// Nothing leaves the machine.
import { createServer, type Server } from 'node:http';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CaughtMail {
  id: number;
  receivedAt: Date;
  mail: ParsedMail;
}

export interface MailCatcher {
  smtpPort: number;
  webUrl: string;
  mails: CaughtMail[];
  close(): Promise<void>;
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function indexPage(mails: CaughtMail[]): string {
  const rows = mails
    .map(
      (m) =>
        `<tr><td>${m.receivedAt.toISOString()}</td><td>${escape(m.mail.from?.text ?? '')}</td><td>${escape(m.mail.to && !Array.isArray(m.mail.to) ? m.mail.to.text : '')}</td><td><a href="/mail/${m.id}">${escape(m.mail.subject ?? '(no subject)')}</a></td></tr>`,
    )
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>Usher mail catcher</title>
<style>body{font:15px system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse}td,th{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left}</style>
<h1>Mail caught by the demo (${mails.length})</h1><table><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th></tr>${rows}</table>
<p>Reload to see new mail.</p>`;
}

export async function startMailCatcher(options: { smtpPort?: number; webPort?: number; onMail?: (mail: CaughtMail) => void } = {}): Promise<MailCatcher> {
  const mails: CaughtMail[] = [];
  const smtp = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then((mail) => {
          const caught = { id: mails.length + 1, receivedAt: new Date(), mail };
          mails.push(caught);
          options.onMail?.(caught);
          callback();
        })
        .catch((err: unknown) => {
          callback(err as Error);
        });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(options.smtpPort ?? 1025, '127.0.0.1', resolve));
  const web: Server = createServer((req, res) => {
    const match = /^\/mail\/(\d+)$/.exec(req.url ?? '');
    const mail = match ? mails[Number(match[1]) - 1] : undefined;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    if (mail) res.end(typeof mail.mail.html === 'string' ? mail.mail.html : `<pre>${escape(mail.mail.text ?? '')}</pre>`);
    else res.end(indexPage(mails));
  });
  await new Promise<void>((resolve) => web.listen(options.webPort ?? 1080, '127.0.0.1', resolve));
  const smtpAddress = smtp.server.address();
  const webAddress = web.address();
  return {
    smtpPort: typeof smtpAddress === 'object' && smtpAddress ? smtpAddress.port : 0,
    webUrl: `http://127.0.0.1:${typeof webAddress === 'object' && webAddress ? webAddress.port : 0}`,
    mails,
    close: async () => {
      await new Promise<void>((resolve) => {
        smtp.close(resolve);
      });
      await new Promise<void>((resolve) =>
        web.close(() => {
          resolve();
        }),
      );
    },
  };
}
