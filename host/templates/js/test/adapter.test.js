// Every operation against scripted Acme Pay answers, through the SDK's
// native harness (the steps the host drives). The test side signs with
// node:crypto, not with sign.js, so the two check each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AdapterError, canonical, form, http } from '{{sdk}}/src/index.js';
import { Harness } from '{{sdk}}/testing/harness.js';
import { AcmePay, NAME, VERSION } from '../src/adapter.js';
import * as wire from '../src/wire.js';

const MERCHANT_ID = 'M100';
const KEY = 'test-api-key-0123456789';

/** Lower-case hex HMAC-SHA256 of `fields` (an object; all but `sign`) with KEY. */
const hmacHex = (fields) =>
  createHmac('sha256', KEY).update(canonical.sortedPairs(Object.entries(fields), ['sign'])).digest('hex');

/** A signed answer of this merchant with `fields`. */
function answer(fields) {
  const f = { ...fields, merchant_id: MERCHANT_ID };
  f.sign = hmacHex(f);
  return http.response(200, 'application/json', JSON.stringify(f));
}

/** The fields of a request, after checking its signature. */
function signedRequest(req) {
  const f = JSON.parse(new TextDecoder().decode(req.body));
  assert.equal(f.sign, hmacHex(f), 'request signature');
  assert.equal(f.merchant_id, MERCHANT_ID);
  return f;
}

const harness = () => new Harness(AcmePay).withSchemaDefaults().text('merchant_id', MERCHANT_ID).secret('api_key', KEY);

const eur = (minor) => ({ minor: BigInt(minor), currency: 'EUR' });

const order = () => ({
  merchantOrderNo: 'ORDER-1',
  amount: eur(1999),
  description: 'Two coffees',
  method: wire.QR_CODE,
  payer: { appId: undefined, openid: undefined, clientIp: undefined },
  expiresAt: undefined,
  attach: undefined,
});

const orderRef = () => ({ merchantOrderNo: 'ORDER-1', providerTradeNo: 'T1', channelTransactionId: undefined });

const notify = (body) => ({
  method: 'post',
  path: '/v1/notify/acme/m1',
  query: '',
  headers: [['content-type', 'application/x-www-form-urlencoded']],
  body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
});

function signedForm(fields) {
  return form.encode(Object.entries({ ...fields, sign: hmacHex(fields) }));
}

/** A signed notification that order ORDER-1 is paid, 19.99 EUR. */
const paymentNotification = () =>
  signedForm({
    event: 'payment',
    merchant_id: MERCHANT_ID,
    out_trade_no: 'ORDER-1',
    trade_no: 'T1',
    status: 'PAID',
    amount: '19.99',
    currency: 'EUR',
  });

/** The kind of the AdapterError `f` throws. */
function errorOf(f) {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof AdapterError, String(e && e.stack));
    return e;
  }
  assert.fail('expected an adapter error');
}

test('describe names the package, marks the api_key secret and speaks the SDK contract', () => {
  const info = AcmePay.describe();
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(info.name, pkg.name);
  assert.equal(NAME, pkg.name);
  assert.equal(VERSION, pkg.version);
  const key = info.configSchema.find((f) => f.name === 'api_key');
  assert.equal(key.kind, 'secret');
  assert.equal(key.default, undefined);
  assert.equal(info.contractVersion, '0.6.0');
});

test('unified order sends a signed order in decimal and answers its QR code', () => {
  const h = harness().respond((req) => {
    assert.equal(req.method, 'post');
    signedRequest(req);
    return answer({ result: 'OK', out_trade_no: 'ORDER-1', trade_no: 'T1', qr_code: 'https://qr.acme-pay.example/T1' });
  });
  const created = h.unifiedOrder(order());
  assert.deepEqual(created.action, { tag: 'qr-code', val: 'https://qr.acme-pay.example/T1' });
  assert.equal(created.order.providerTradeNo, 'T1');
  const sent = h.sent[0];
  assert.equal(sent.url, 'https://api.acme-pay.example/v1/orders');
  const f = signedRequest(sent);
  assert.equal(f.currency, 'EUR');
  assert.equal(f.amount, '19.99');
  assert.equal(f.out_trade_no, 'ORDER-1');
  assert.ok(!new TextDecoder().decode(sent.body).includes(KEY));
});

test('an answer with a wrong signature is refused', () => {
  const f = { result: 'OK', merchant_id: MERCHANT_ID, out_trade_no: 'ORDER-1', qr_code: 'https://qr.acme-pay.example/T1' };
  const h = harness().respond(() => http.response(200, 'application/json', JSON.stringify({ ...f, sign: '00'.repeat(32) })));
  assert.equal(errorOf(() => h.unifiedOrder(order())).kind, 'bad-signature');
});

test("a refusal keeps the provider's code and says whether to retry", () => {
  const h = harness().respond(() => answer({ result: 'ERROR', error_code: 'SYSTEM_BUSY', error_message: 'try again' }));
  const e = errorOf(() => h.unifiedOrder(order()));
  assert.equal(e.kind, 'provider-rejected');
  assert.equal(e.code, 'SYSTEM_BUSY');
  assert.equal(e.retryable, true);
});

test('an unknown method or currency is refused before any request', () => {
  const h = harness();
  assert.equal(errorOf(() => h.unifiedOrder({ ...order(), method: 'wechat_mini_program' })).kind, 'unsupported');
  assert.equal(errorOf(() => h.unifiedOrder({ ...order(), amount: { minor: 100n, currency: 'JPY' } })).kind, 'invalid-request');
  assert.equal(h.sent.length, 0);
});

test('query reads a paid order in minor units', () => {
  const h = harness().respond((req) => {
    assert.ok(req.url.endsWith(wire.QUERY_ORDER));
    signedRequest(req);
    return answer({
      result: 'OK', out_trade_no: 'ORDER-1', trade_no: 'T1', status: 'PAID',
      amount: '19.99', currency: 'EUR', paid_at: '1700000100',
    });
  });
  const status = h.query({ order: orderRef() });
  assert.equal(status.state, 'paid');
  assert.deepEqual(status.amount, eur(1999));
  assert.equal(status.paidAt, 1_700_000_100n);
});

test('an answer about another order is refused', () => {
  const h = harness().respond(() =>
    answer({ result: 'OK', out_trade_no: 'ORDER-2', status: 'PAID', amount: '19.99', currency: 'EUR' }),
  );
  assert.equal(errorOf(() => h.query({ order: orderRef() })).kind, 'malformed-response');
});

test('close answers the closed order', () => {
  const h = harness().respond((req) => {
    assert.ok(req.url.endsWith(wire.CLOSE_ORDER));
    return answer({ result: 'OK', out_trade_no: 'ORDER-1', status: 'CLOSED', amount: '19.99', currency: 'EUR' });
  });
  assert.equal(h.close({ order: orderRef() }).state, 'closed');
});

test('refund and refund query follow the refund', () => {
  const statuses = ['SUCCESS', 'PROCESSING'];
  const h = harness().respond((req) => {
    assert.equal(signedRequest(req).out_refund_no, 'R1');
    return answer({
      result: 'OK', out_trade_no: 'ORDER-1', out_refund_no: 'R1', refund_id: 'RF1',
      refund_status: statuses.pop(), refund_amount: '5.00', currency: 'EUR',
    });
  });
  const refund = h.refund({ order: orderRef(), refundNo: 'R1', amount: eur(500), orderAmount: eur(1999), reason: undefined });
  assert.equal(refund.state, 'pending');
  assert.deepEqual(refund.amount, eur(500));
  assert.equal(signedRequest(h.sent[0]).refund_amount, '5.00');
  const queried = h.refundQuery({ order: orderRef(), refundNo: 'R1', providerRefundId: 'RF1' });
  assert.equal(queried.state, 'succeeded');
  assert.ok(h.sent[1].url.endsWith(wire.QUERY_REFUND));
});

test('a refund above the order amount is refused before any request', () => {
  const h = harness();
  const e = errorOf(() =>
    h.refund({ order: orderRef(), refundNo: 'R1', amount: eur(2000), orderAmount: eur(1999), reason: undefined }),
  );
  assert.equal(e.kind, 'invalid-request');
  assert.equal(h.sent.length, 0);
});

test('a signed payment notification becomes an event and is acknowledged', () => {
  const outcome = harness().parseNotify(notify(paymentNotification()));
  assert.equal(outcome.ack.status, 200);
  assert.equal(new TextDecoder().decode(outcome.ack.body), 'OK');
  assert.equal(outcome.events.length, 1);
  const [{ tag, val }] = outcome.events;
  assert.equal(tag, 'payment');
  assert.equal(val.state, 'paid');
  assert.deepEqual(val.amount, eur(1999));
});

test('a signed refund notification becomes a refund event', () => {
  const body = signedForm({
    event: 'refund', merchant_id: MERCHANT_ID, out_trade_no: 'ORDER-1', out_refund_no: 'R1',
    refund_status: 'SUCCESS', refund_amount: '5.00', currency: 'EUR',
  });
  const [{ tag, val }] = harness().parseNotify(notify(body)).events;
  assert.equal(tag, 'refund');
  assert.equal(val.state, 'succeeded');
  assert.equal(val.refundNo, 'R1');
});

test('a forged notification is refused with the FAIL answer', () => {
  const forged = paymentNotification().replace('19.99', '0.01');
  const e = errorOf(() => harness().parseNotify(notify(forged)));
  assert.equal(e.kind, 'bad-signature');
  assert.equal(e.ack.status, 400);
  assert.equal(new TextDecoder().decode(e.ack.body), 'FAIL');
});

/** `count` deterministic mutations of `sample`: bytes flipped, cut, repeated or dropped. */
function* mutations(sample, seed, count) {
  let x = seed >>> 0 || 1;
  const next = (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  for (let i = 0; i < count; i++) {
    const b = Array.from(sample);
    for (let edits = 1 + next(4); edits > 0 && b.length > 0; edits--) {
      const at = next(b.length);
      switch (next(4)) {
        case 0:
          b[at] ^= 1 << next(8);
          break;
        case 1:
          b.length = at;
          break;
        case 2:
          b.splice(at, 0, ...b.slice(at, at + 1 + next(8)));
          break;
        default:
          b.splice(at, 1 + next(8));
      }
    }
    yield new Uint8Array(b);
  }
}

test('parseNotify never throws anything but an adapter error on mutated notifications', () => {
  const sample = new TextEncoder().encode(paymentNotification());
  // What the signature covers: every field but `sign`, empty ones skipped
  // (the adapter reads an empty field as absent).
  const signedFields = (body) =>
    JSON.stringify(wire.sorted(wire.notificationFields(body)).filter(([k, v]) => k !== 'sign' && v !== ''));
  let accepted = 0;
  for (const body of mutations(sample, 7, 300)) {
    let outcome;
    try {
      outcome = harness().parseNotify(notify(body));
    } catch (e) {
      assert.ok(e instanceof AdapterError, String(e && e.stack));
      assert.equal(e.ack.status, 400);
      continue;
    }
    // Only the signed fields themselves (however encoded, the signature in either hex case) are an event.
    accepted += 1;
    assert.equal(signedFields(body), signedFields(sample), 'accepted a changed message');
    assert.equal(outcome.events.length, 1);
  }
  assert.ok(accepted < 300, 'some mutation was refused');
});
