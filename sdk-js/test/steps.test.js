// The step/exchange pattern, secret operations and errors, through the
// same `steps` the component exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, canonical, secrets, encoding, AdapterError, invalidRequest, Secret } from '../src/index.js';
import { Harness } from '../testing/harness.js';

// A provider that signs WeChat-v2 style and asks twice.
const Probe = {
  describe: () => ({ name: 'probe', configSchema: [{ name: 'region', default: 'eu' }] }),
  unifiedOrder(ctx, req) {
    const key = ctx.config.secret('api_key');
    const stringA = canonical.sortedPairs([['body', req.description], ['nonce_str', ctx.nonce(16)]]);
    const sign = canonical.md5WithKey(ctx, stringA, key);
    const first = ctx.send(http.post(`https://p.example/${ctx.config.text('region')}`, 'text/plain', `${stringA}&sign=${sign}`));
    const second = ctx.send(http.get(`https://p.example/confirm?status=${first.status}`));
    return { status: second.status, sign };
  },
  query(ctx) {
    return ctx.config.text('missing');
  },
  close(ctx) {
    return ctx.config.text('api_key');
  },
  refund(ctx) {
    return ctx.digest(secrets.md5, [secrets.secret(new Secret(99))]);
  },
  refundQuery() {
    throw new TypeError('a bug');
  },
  parseNotify() {
    throw invalidRequest('no').withAck(http.response(200, 'text/plain', 'fail'));
  },
};

test('WeChat v2 published vector through md5WithKey, the key held by the native host', () => {
  const h = new Harness(Probe).secret('api_key', '192006250b4c09247ec02edce69f6a2d');
  const ctx = new secrets.SecretOps(h.host);
  const stringA = 'appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA';
  const key = h.secretOf('api_key');
  assert.equal(canonical.md5WithKey(ctx, stringA, key), '9A0A8659F005D6984697E2CA0A9CF3B7');
  // providers.md vector 2: the same string, HMAC-SHA256 with the key as raw bytes.
  const hmac = ctx.hmac(secrets.sha256, key, secrets.RAW, canonical.withKey(stringA, key));
  assert.equal(encoding.hexUpper(hmac).slice(0, 8), '6A9AE165');
  // A secret prints as a mask, never its handle or value.
  assert.equal(String(key), 'Secret(***)');
  assert.equal(JSON.stringify({ key }), '{"key":"Secret(***)"}');
});

test('a step ends at each request and replays recorded answers', () => {
  const h = new Harness(Probe)
    .secret('api_key', 'k')
    .withSchemaDefaults()
    .respond((req) => http.response(req.method === 'post' ? 201 : 202, 'text/plain', ''));
  const order = { description: 'Tea' };
  const out = h.unifiedOrder(order);
  assert.equal(out.status, 202);
  assert.equal(h.sent.length, 2);
  assert.equal(h.sent[0].url, 'https://p.example/eu');
  assert.equal(h.sent[1].url, 'https://p.example/confirm?status=201');
  // The first step asks for the POST; with it answered, the GET.
  const first = h.step('unifiedOrder', order);
  assert.equal(first.tag, 'send');
  assert.ok(http.sameRequest(first.val, h.sent[0]));
  const second = h.step('unifiedOrder', order, [{ request: first.val, response: http.response(201, 'text/plain', '') }]);
  assert.equal(second.val.url, 'https://p.example/confirm?status=201');
  // Same seed, same nonce: the body is identical in every replay.
  assert.equal(encoding.fromUtf8(first.val.body), encoding.fromUtf8(h.sent[0].body));
});

test('a replay that asks for something else, or finishes early, is nondeterministic', () => {
  const h = new Harness(Probe).secret('api_key', 'k').withSchemaDefaults();
  const order = { description: 'Tea' };
  const other = http.get('https://p.example/other');
  const r = h.step('unifiedOrder', order, [{ request: other, response: http.response(200, 'text/plain', '') }]);
  assert.equal(r.val.val.tag, 'nondeterministic');
  assert.match(r.val.val.val, /request #1 differs from the recorded one/);
  const q = h.step('query', {}, [{ request: other, response: http.response(200, 'text/plain', '') }]);
  assert.equal(q.val.val.tag, 'nondeterministic');
  assert.match(q.val.val.val, /1 recorded exchange\(s\) never requested again/);
});

test('configuration, secret and contract errors keep their kinds; bugs trap', () => {
  const h = new Harness(Probe).secret('api_key', 'k');
  const kind = (f) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      assert.ok(e instanceof AdapterError, String(e));
      return `${e.kind}: ${e.message}`;
    }
  };
  assert.equal(kind(() => h.query({})), 'invalid-config: missing field `missing`');
  assert.equal(kind(() => h.close({})), 'invalid-config: field `api_key` is a secret where plain text was expected');
  assert.equal(kind(() => h.refund({})), 'invalid-config: secret handle 99 is not valid in this call');
  assert.throws(() => h.refundQuery({}), TypeError);
  assert.match(h.logs.at(-1)[1], /adapter threw: TypeError: a bug/);
  const notify = h.step('parseNotify', {});
  assert.deepEqual(notify.val.val.error, { tag: 'invalid-request', val: 'no' });
  assert.equal(encoding.fromUtf8(notify.val.val.ack.body), 'fail');
  assert.throws(() => secrets.secret('plain text'), /expected a Secret/);
});

test('payouts (contract 0.5) answer unsupported and describe says so unless implemented', () => {
  const NoPayouts = { describe: () => ({ name: 'np', capabilities: { close: true } }) };
  const h = new Harness(NoPayouts);
  const info = h.exports.describe();
  assert.equal(info.capabilities.payouts, false);
  assert.equal(info.capabilities.payoutNotifications, false);
  assert.equal(info.capabilities.close, true);
  for (const op of ['payout', 'payoutQuery']) {
    assert.throws(() => h[op]({}), (e) => e instanceof AdapterError && e.kind === 'unsupported');
  }
  assert.equal(h.sent.length, 0);
  // An adapter that sets the flags keeps them.
  const Payer = { describe: () => ({ capabilities: { payouts: true, payoutNotifications: true } }) };
  assert.equal(new Harness(Payer).exports.describe().capabilities.payouts, true);
});
