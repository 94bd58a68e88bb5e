import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { useNamespace, type Tap } from '../support/harness';
import type { RunningService } from '../support/service-process';
import { healthStatus, seconds } from './support';

/**
 * Fault suite, part 4 (issue 15): malformed, oversized and adversarial HTTP requests on every
 * route of the two services with an HTTP API — the operator (its API and dashboard) and serving —
 * sent raw where a client library would refuse to send them. Every request gets a 4xx (never a
 * 5xx: nothing here is the server's fault), error bodies carry a message and never a stack trace
 * or a source path, no mutation happens (no command on any mailbox topic, serving's adapters
 * unchanged), and both services stay healthy and keep answering valid requests.
 */

const SEED = Number(process.env.CPREC_FUZZ_SEED ?? 20_260_515);
const ns = useNamespace('faults_http');
const OPERATOR_TOKEN = 'fuzz-operator-token-0123456789abcdef';
const SERVING_TOKEN = 'fuzz-serving-token-0123456789abcdef';

interface Route {
  service: 'operator' | 'serving';
  method: 'GET' | 'POST';
  path: string;
  /** Changes state: needs the service's token. */
  mutating: boolean;
  /** A valid body (POST) the mutations below start from. */
  body?: Record<string, unknown>;
}

const ROUTES: Route[] = [
  { service: 'operator', method: 'POST', path: '/v1/rounds', mutating: true, body: { reason: 'fuzz' } },
  { service: 'operator', method: 'POST', path: '/v1/rounds/r-1/cancel', mutating: true, body: {} },
  { service: 'operator', method: 'GET', path: '/v1/rounds', mutating: false },
  { service: 'operator', method: 'GET', path: '/v1/rounds/r-1', mutating: false },
  { service: 'operator', method: 'GET', path: '/v1/adapters', mutating: false },
  { service: 'operator', method: 'GET', path: '/v1/adapters/a-1', mutating: false },
  {
    service: 'operator',
    method: 'POST',
    path: '/v1/adapters/a-1/promote',
    mutating: true,
    body: { reason: 'fuzz' },
  },
  { service: 'operator', method: 'GET', path: '/v1/evaluations', mutating: false },
  { service: 'operator', method: 'GET', path: '/v1/promotions', mutating: false },
  { service: 'operator', method: 'GET', path: '/v1/serving', mutating: false },
  {
    service: 'operator',
    method: 'POST',
    path: '/v1/serving/rollback',
    mutating: true,
    body: { domain: 'games' },
  },
  { service: 'operator', method: 'GET', path: '/v1/drift', mutating: false },
  {
    service: 'serving',
    method: 'POST',
    path: '/v1/recommend',
    mutating: false,
    body: { user_id: 'u1', domain: 'games', history: ['i1'], candidate_ids: ['i1', 'i2'] },
  },
  { service: 'serving', method: 'POST', path: '/v1/rollback', mutating: true, body: { domain: 'games' } },
  { service: 'serving', method: 'GET', path: '/v1/adapter', mutating: false },
];

interface RawRequest {
  label: string;
  route: Route;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
}

/** mulberry32: the suite's seeded choices (which mutations, which values). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/**
 * Bodies that are not the JSON object a route takes, each with a label. Not here, because they
 * are valid: a byte-order mark before the JSON (RFC 8259 lets a parser ignore it) and control
 * characters in free text (storable, and the contracts accept them on Kafka too).
 */
function badBodies(route: Route, random: () => number): Array<[string, Buffer, string]> {
  const base = route.body ?? {};
  const ct = 'application/json';
  const field = Object.keys(base)[0] ?? 'reason';
  const nested = (depth: number) => Buffer.from('['.repeat(depth) + ']'.repeat(depth));
  const bodies: Array<[string, Buffer, string]> = [
    ['truncated JSON', Buffer.from('{"reason": "fu'), ct],
    ['not JSON', Buffer.from('reason=fuzz'), ct],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]),
      ct,
    ],
    ['a JSON array', json([base]), ct],
    ['a JSON string', json('fuzz'), ct],
    ['JSON null', Buffer.from('null'), ct],
    ['a number', Buffer.from('1e400'), ct],
    ['__proto__ key', Buffer.from(`{"__proto__": {"admin": true}, ${JSON.stringify(field)}: 1}`), ct],
    ['constructor.prototype', json({ ...base, constructor: { prototype: { polluted: true } } }), ct],
    ['wrong field type', json({ ...base, [field]: { nested: [1, 2, 3] } }), ct],
    ['lone surrogate', Buffer.from(`{${JSON.stringify(field)}: "\\ud800"}`), ct],
    ['10 000-deep nesting', nested(10_000), ct],
    ['over the body limit (200 kB)', json({ ...base, pad: 'x'.repeat(200_000) }), ct],
    ['text/plain', json(base), 'text/plain'],
    ['form-encoded', Buffer.from(`${field}=fuzz`), 'application/x-www-form-urlencoded'],
    [
      'multipart',
      Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n--b--'),
      'multipart/form-data; boundary=b',
    ],
    ['JSON with a charset nobody speaks', json(base), 'application/json; charset=ebcdic'],
    ['a long random string field', json({ ...base, [field]: randomText(random, 20_000) }), ct],
  ];
  return bodies;
}

function randomText(random: () => number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCodePoint(32 + Math.floor(random() * 0x2000));
  return s;
}

/** The request set: per route, bad bodies (POST), bad paths and queries, bad credentials. */
function fuzzRequests(): RawRequest[] {
  const random = rng(SEED);
  const out: RawRequest[] = [];
  const auth = (r: Route): Record<string, string> =>
    r.mutating
      ? { authorization: `Bearer ${r.service === 'operator' ? OPERATOR_TOKEN : SERVING_TOKEN}` }
      : {};
  for (const route of ROUTES) {
    const add = (label: string, extra: Partial<RawRequest>) =>
      out.push({
        label: `${route.method} ${route.path}: ${label}`,
        route,
        method: route.method,
        path: route.path,
        headers: { ...auth(route) },
        body: null,
        ...extra,
      });
    if (route.method === 'POST') {
      for (const [label, body, contentType] of badBodies(route, random))
        add(label, { body, headers: { ...auth(route), 'content-type': contentType } });
      if (route.mutating) {
        const body = json(route.body);
        const ct = { 'content-type': 'application/json' };
        add('no token', { body, headers: ct });
        add('wrong token', { body, headers: { ...ct, authorization: 'Bearer wrong' } });
        add('token of the other service', {
          body,
          headers: {
            ...ct,
            authorization: `Bearer ${route.service === 'operator' ? SERVING_TOKEN : OPERATOR_TOKEN}`,
          },
        });
        add('Basic scheme', {
          body,
          headers: { ...ct, authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
        });
        add('token with a prefix of the right one', {
          body,
          headers: {
            ...ct,
            authorization: `Bearer ${(route.service === 'operator' ? OPERATOR_TOKEN : SERVING_TOKEN).slice(0, 10)}`,
          },
        });
        add('latin-1 bytes in the token', { body, headers: { ...ct, authorization: 'Bearer \u00ff\u00fe' } });
      }
    } else {
      add('query: negative limit', { path: `${route.path}?limit=-1` });
      add('query: huge limit', { path: `${route.path}?limit=1e99` });
      add('query: non-numeric limit', { path: `${route.path}?limit=abc` });
      add('query: repeated parameter', { path: `${route.path}?limit=1&limit=2&domain=a&domain=b` });
      add('query: bracketed object', { path: `${route.path}?domain[$ne]=x&limit[a]=1` });
      add('query: NUL in a value', { path: `${route.path}?domain=%00games` });
      add('query: a 6 000-character value', { path: `${route.path}?domain=${'d'.repeat(6000)}` });
      add('query: unknown parameter', { path: `${route.path}?drop=table` });
      add('query: broken percent-encoding', { path: `${route.path}?domain=%E0%A4%A` });
    }
    // Paths with an id: the id mangled.
    if (/\/(r-1|a-1)(\/|$)/.test(route.path))
      for (const [label, id] of [
        ['id: broken percent-encoding', '%ff%fe'],
        ['id: NUL', '%00'],
        ['id: dot-dot', '%2e%2e%2f%2e%2e%2fetc%2fpasswd'],
        ['id: 5 000 characters', 'i'.repeat(5000)],
        ['id: SQL', encodeURIComponent("a' OR '1'='1")],
      ])
        add(label, { path: route.path.replace(/r-1|a-1/, id) });
    add('method not allowed', { method: route.method === 'GET' ? 'DELETE' : 'PUT', body: null });
    add('a 20 kB header', { headers: { ...auth(route), 'x-fuzz': 'h'.repeat(20_000) } });
  }
  return out;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends a request as given (node's client sends what it is told; fetch would refuse some). */
function send(port: number, r: RawRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: r.method,
        path: r.path,
        headers: { ...r.headers, ...(r.body ? { 'content-length': String(r.body.length) } : {}) },
        insecureHTTPParser: true,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${r.label}: no answer in 30 s`)));
    req.on('error', reject);
    if (r.body) req.write(r.body);
    req.end();
  });
}

/** Bytes straight onto a socket (what no HTTP client sends); resolves with the status line. */
function sendBytes(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
    });
    const done = () => resolve(got.split('\r\n')[0] ?? '');
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.write(bytes, 'latin1');
  });
}

/** What an error body must never show: stack frames or paths of the sources. */
const LEAK = /\bat [\w.<>]+ \(|node_modules|\/services\/|\/libs\/|\.ts:\d+/;

let operator: RunningService;
let serving: RunningService;
let tap: Tap;

beforeAll(async () => {
  tap = await ns.tap([ns.topics.roundCommands, ns.topics.evaluatorCommands, ns.topics.servingCommands]);
  [operator, serving] = await Promise.all([
    ns.startService('operator', 'OPERATOR_PORT', { OPERATOR_TOKEN }),
    ns.startService(
      'serving',
      'SERVING_PORT',
      {
        SERVING_TOKEN,
        SERVING_GROUP_ID: ns.group('serving'),
        SERVING_BACKEND: 'cpu',
        SERVING_WORKERS: '0',
        SERVING_FIRST_STAGE_REFRESH_MS: '3600000',
      },
      { timeoutMs: 180_000 },
    ),
  ]);
}, 300_000);

describe('HTTP fuzz on the operator and serving APIs', () => {
  it('answers every malformed request with a 4xx and a message, leaks nothing, changes nothing', async () => {
    const servingBefore = await (await fetch(`http://127.0.0.1:${serving.port}/v1/adapter`)).json();
    const requests = fuzzRequests();
    const started = Date.now();
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    for (const r of requests) {
      const port = r.route.service === 'operator' ? operator.port : serving.port;
      const answer = await send(port, r).catch((err: unknown): Answer => ({
        status: 0,
        headers: {},
        body: (err as Error).message,
      }));
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const problems: string[] = [];
      // A malformed POST is always refused; a read may ignore a query parameter it does not take
      // (and answer 200), but never fails with a 5xx.
      const refused = answer.status >= 400 && answer.status < 500;
      if (r.method === 'POST' ? !refused : answer.status === 0 || answer.status >= 500)
        problems.push(`status ${answer.status}`);
      if (LEAK.test(answer.body)) problems.push('stack trace or source path in the body');
      const isJson = String(answer.headers['content-type'] ?? '').includes('application/json');
      // 431 (headers too large) comes from node's parser before any handler: no body at all.
      if (answer.status >= 400 && answer.status !== 431) {
        if (!isJson) problems.push(`content-type ${String(answer.headers['content-type'])}`);
        else {
          const message = (JSON.parse(answer.body) as { message?: unknown }).message;
          if (typeof message !== 'string' && !Array.isArray(message)) problems.push('no message');
        }
      }
      if (problems.length > 0)
        failures.push(`${r.label} → ${problems.join(', ')}: ${answer.body.slice(0, 160)}`);
    }
    console.log(
      `[http-fuzz] seed ${SEED}: ${requests.length} requests in ${seconds(started)}; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(failures).toEqual([]);

    // Bytes no client library sends: each gets a 400 (or the connection closed), nothing more.
    const raw = [
      'GARBAGE\r\n\r\n',
      'GET /v1/rounds HTTP/9.9\r\nHost: x\r\n\r\n',
      'POST /v1/rounds HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
      'POST /v1/rounds HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
      'POST /v1/rounds HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'GET /v1/rounds HTTP/1.1\r\nHost: x\r\nBad Header Name: v\r\n\r\n',
    ];
    for (const service of [operator, serving])
      for (const bytes of raw) {
        const line = await sendBytes(service.port, bytes);
        if (line !== '' && !/^HTTP\/1\.[01] 4\d\d /.test(line))
          failures.push(`${service.name} raw ${JSON.stringify(bytes.slice(0, 40))} → ${line}`);
      }
    expect(failures).toEqual([]);

    // Nothing changed: no command on any mailbox, the same adapters serve, both healthy, and a
    // valid request still works.
    await new Promise((r) => setTimeout(r, 1000));
    expect(tap.messages.map((m) => m.topic)).toEqual([]);
    expect(await (await fetch(`http://127.0.0.1:${serving.port}/v1/adapter`)).json()).toEqual(servingBefore);
    expect(await healthStatus(operator.port)).toBe(200);
    expect(await healthStatus(serving.port)).toBe(200);
    const rounds = await fetch(`http://127.0.0.1:${operator.port}/v1/rounds`);
    expect(rounds.status).toBe(200);
    const recommend = await fetch(`http://127.0.0.1:${serving.port}/v1/recommend`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ROUTES.find((r) => r.path === '/v1/recommend')!.body),
    });
    expect(recommend.status).toBeLessThan(500);
  }, 300_000);
});
