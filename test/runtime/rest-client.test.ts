// The RestClient against a local HTTP server: what it sends (the kubeconfig's
// token, JSON), what it makes of the answers (parsed JSON, a KubeApiError that
// apiErrorOf reads), its one retry after a 401 with the kubeconfig read again,
// its keep-alive connections and its deadline for a server that never answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { apiErrorOf, isConflict, isNotFound } from '../../src/runtime/client.ts';
import { KubeApiError, microTime, RestClient } from '../../src/runtime/rest-client.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Which connection it came on (1 for the first). */
  connection: number;
}

const servers: Server[] = [];
const clients: RestClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(resolve);
        }),
    ),
  );
});

type Handler = (seen: Seen, res: ServerResponse) => void;

async function serve(
  handler: Handler,
): Promise<{ seen: Seen[]; kubeConfig: KubeConfig; client: (options?: ConstructorParameters<typeof RestClient>[1]) => RestClient }> {
  const seen: Seen[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const one = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        connection: (req.socket as { usherId?: number }).usherId ?? 0,
      };
      seen.push(one);
      handler(one, res);
    });
  });
  server.on('connection', (socket) => {
    (socket as { usherId?: number }).usherId = ++connections;
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'local', server: `http://127.0.0.1:${port}/`, skipTLSVerify: true }],
    users: [{ name: 'me', token: 'token-1' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'me' }],
    currentContext: 'local',
  });
  return {
    seen,
    kubeConfig,
    client: (options) => {
      const client = new RestClient(kubeConfig, options);
      clients.push(client);
      return client;
    },
  };
}

const json = (res: ServerResponse, code: number, body: unknown): void => {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

describe('RestClient', () => {
  it('sends JSON with the kubeconfig’s bearer token and reads the JSON answer, timestamps as the strings they are', async () => {
    const { seen, client } = await serve((_seen, res) => {
      json(res, 201, { metadata: { name: 'a', creationTimestamp: '2026-12-02T07:00:00Z' } });
    });
    const rest = client({ userAgent: 'usher-test' });
    const answer = await rest.post<{ metadata: { creationTimestamp: string } }>('/api/v1/namespaces/ns/secrets', {
      metadata: { name: 'a' },
      data: { k: 'dg==' },
    });
    expect(answer.metadata.creationTimestamp).toBe('2026-12-02T07:00:00Z');
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/api/v1/namespaces/ns/secrets' });
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual({ metadata: { name: 'a' }, data: { k: 'dg==' } });
    expect(seen[0]?.headers).toMatchObject({
      authorization: 'Bearer token-1',
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'usher-test',
    });
    await rest.get('/api/v1/secrets', { labelSelector: 'a=b', limit: 5, continue: undefined });
    expect(seen[1]?.url).toBe('/api/v1/secrets?labelSelector=a%3Db&limit=5');
    expect(seen[1]?.headers['content-type']).toBeUndefined();
  });

  it('rejects an answer other than 2xx with a KubeApiError that apiErrorOf reads: code, reason and the server’s message', async () => {
    const { client } = await serve((seen, res) => {
      if (seen.method === 'GET') json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'secrets "a" not found' });
      else if (seen.method === 'PUT') json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' });
      else res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
    });
    const rest = client();
    const missing = await rest.get('/api/v1/namespaces/ns/secrets/a').catch((err: unknown) => err);
    expect(missing).toBeInstanceOf(KubeApiError);
    expect(isNotFound(missing)).toBe(true);
    expect(apiErrorOf(missing)).toEqual({ code: 404, reason: 'NotFound', message: 'secrets "a" not found' });
    expect((missing as Error).message).toBe('GET /api/v1/namespaces/ns/secrets/a: HTTP 404: secrets "a" not found');
    expect(isConflict(await rest.put('/x', {}).catch((err: unknown) => err))).toBe(true);
    const plain = await rest.delete('/x').catch((err: unknown) => err);
    expect(apiErrorOf(plain)).toMatchObject({ code: 500 });
    expect((plain as KubeApiError).body).toBe('boom');
  });

  it('after a 401, reads the kubeconfig again and retries once with what it says now (a rotated token)', async () => {
    let accepted = 'Bearer token-1';
    const { seen, kubeConfig, client } = await serve((one, res) => {
      if (one.headers.authorization === accepted) json(res, 200, { ok: true });
      else json(res, 401, { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' });
    });
    const rest = client();
    await rest.get('/version');
    // Rotate the token: the cached header still says token-1 until a 401 says otherwise.
    const user = kubeConfig.getCurrentUser() as { token?: string };
    user.token = 'token-2';
    accepted = 'Bearer token-2';
    expect(await rest.get('/version')).toEqual({ ok: true });
    expect(seen.map((s) => s.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-1', 'Bearer token-2']);
    // A token that is refused for good is refused once more, not forever.
    accepted = 'Bearer token-3';
    const refused = await rest.get('/version').catch((err: unknown) => err);
    expect(apiErrorOf(refused).code).toBe(401);
    expect(seen).toHaveLength(5);
  });

  it('keeps its connections open: sequential requests share one', async () => {
    const { seen, client } = await serve((_one, res) => {
      json(res, 200, {});
    });
    const rest = client();
    for (let i = 0; i < 5; i++) await rest.get('/api/v1/namespaces');
    expect(new Set(seen.map((s) => s.connection))).toEqual(new Set([1]));
  });

  it('opens at most maxSockets connections for requests in parallel', async () => {
    const held: ServerResponse[] = [];
    const { seen, client } = await serve((_one, res) => {
      held.push(res);
      if (held.length === 2) for (const r of held.splice(0)) json(r, 200, {});
    });
    const rest = client({ maxSockets: 2 });
    await Promise.all([0, 1, 2, 3].map(() => rest.get('/x')));
    expect(new Set(seen.map((s) => s.connection)).size).toBe(2);
  });

  it('gives up on a request the server never answers, naming it', async () => {
    const { client } = await serve(() => {
      // never answers
    });
    const rest = client({ requestTimeoutMs: 200 });
    const started = performance.now();
    await expect(rest.get('/api/v1/namespaces/ns/secrets/a')).rejects.toThrow(
      'GET /api/v1/namespaces/ns/secrets/a: no answer from the API server within 200 ms',
    );
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('refuses requests once closed', async () => {
    const { client } = await serve((_one, res) => {
      json(res, 200, {});
    });
    const rest = client();
    rest.close();
    await expect(rest.get('/x')).rejects.toThrow('the client is closed');
  });
});

describe('microTime', () => {
  it('writes RFC 3339 with six fractional digits, as the API server wants for MicroTime fields', () => {
    expect(microTime(new Date('2026-12-02T07:20:16.123Z'))).toBe('2026-12-02T07:20:16.123000Z');
    expect(microTime()).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });
});
