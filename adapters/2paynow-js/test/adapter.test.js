// Every operation of the JavaScript 2paynow against a scripted 2paynow,
// through the SDK's native harness (the steps the host drives). The test
// side signs with node:crypto, not with sign.js, so the two check each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AdapterError, encoding, form, http } from '../../../sdk-js/src/index.js';
import { Harness } from '../../../sdk-js/testing/harness.js';
import { TwoPayNow, VERSION } from '../src/adapter.js';

const MID = '4002563369';
const KEY = 'zG93Cv85BCCp2h';

const md5Sign = (fn, mid, ts, key) => createHash('md5').update(`${fn}${mid}${ts}${key}`).digest('hex');

const harness = () =>
  new Harness(TwoPayNow).text('mid', MID).secret('key', KEY).text('return_url', 'https://shop.example/paid').withSchemaDefaults();

const order = (method, no, minor, currency) => ({
  merchantOrderNo: no,
  amount: { minor: BigInt(minor), currency },
  description: 'Tea, 250 g',
  method,
  payer: {},
  expiresAt: undefined,
  attach: undefined,
});

const paramsOf = (url) => Object.fromEntries(form.decode(url.split('?')[1] ?? ''));
const answer = (body) => http.response(200, 'application/json', JSON.stringify(body));

/** A 2paynow answering each `function` from `answers`; `seen` records the parameters. */
function provider(answers) {
  const seen = [];
  const respond = (req) => {
    assert.equal(req.method, 'get');
    assert.equal(req.body.length, 0);
    assert.ok(req.url.startsWith('https://www.2paynow.com/zhifu/mc_itf?'), req.url);
    const p = paramsOf(req.url);
    seen.push(p);
    if (!(p.function in answers)) throw new Error(`unexpected function ${p.function}`);
    const a = answers[p.function];
    return typeof a === 'function' ? a(p) : answer(a);
  };
  return { respond, seen };
}

const queryAnswer = (tradeNo, transStatus, amount, currency, fn = 'query') => ({
  status: 200, function: fn, timestamp: '1700000000000', sign: md5Sign(fn, MID, '1700000000000', KEY),
  trade_no: tradeNo, trans_status: transStatus, trans_time: '2023-11-14 23:13:20',
  forex_rate: '7.8', amount, currency, refund_amount: '0.00',
});

const kindOf = (f) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof AdapterError, String(e && e.stack));
    return e.kind;
  }
};

const inbound = (method, query, body = new Uint8Array()) => ({
  method, path: '/v1/notify/2paynow-js/m1', query, headers: [], body: typeof body === 'string' ? encoding.utf8(body) : body,
});

/** A notification as 2paynow sends it, with `changes` applied after signing ('' removes one). */
function notification(wap, changes = {}) {
  const ts = '1700000100000';
  const fn = wap ? 'wap_precreate' : 'precreate';
  let p = [
    ['amount', '8.99'], ['amount_cny', '70.10'], ['currency', 'EUR'], ['function', fn],
    ['merchant_trade_no', wap ? 'ORDER-20' : ''], ['mid', MID],
    ['passback_parameters', '{"merchant_order_no":"ORDER-20"}'], ['timestamp', ts], ['trade_no', 'A20'],
    ['trade_status', 'TRADE_SUCCESS'], ['original_trade_no', '4200000020'], ['sign', md5Sign(fn, MID, ts, KEY)],
  ];
  for (const [k, v] of Object.entries(changes)) {
    p = p.filter(([name]) => name !== k);
    if (v !== '') p.push([k, v]);
  }
  return form.encode(p);
}

// ---------------------------------------------------------------- vectors

test('the published vector (providers.md §6.5) is what the test side computes', () => {
  assert.equal(md5Sign('precreate', MID, '1571034662245', KEY), '4f83e30f527ff4ed0fc9c03185f43f97');
});

test('the published vector signs a precreate at that timestamp', () => {
  const { respond, seen } = provider({ precreate: { status: 200, trade_no: 'A1', qr_code: 'weixin://wxpay/bizpayurl?pr=x' } });
  const h = harness().text('timestamp_unit', 'seconds').timestamp(1571034662245).respond(respond);
  h.unifiedOrder(order('wechat_native', 'ORDER-1', 899, 'EUR'));
  assert.equal(seen[0].timestamp, '1571034662245');
  assert.equal(seen[0].sign, '4f83e30f527ff4ed0fc9c03185f43f97');
});

test('the published notification verifies and names no order', () => {
  const query = form.encode([
    ['amount', '0.01'], ['amount_cny', '0.08'], ['currency', 'EUR'], ['function', 'precreate'],
    ['merchant_trade_no', ''], ['mid', MID],
    ['passback_parameters', '{"serial_number":"16223658963","vip_id":904425,"is_wap":0}'],
    ['sign', '4f83e30f527ff4ed0fc9c03185f43f97'], ['timestamp', '1571034662245'],
    ['trade_no', 'A19101413542297869'], ['trade_status', 'TRADE_SUCCESS'],
  ]);
  const h = harness();
  const out = h.parseNotify(inbound('get', query));
  assert.deepEqual(out.events, []);
  assert.equal(out.ack.status, 200);
  assert.equal(encoding.fromUtf8(out.ack.body), 'success');
  assert.equal(kindOf(() => h.parseNotify(inbound('get', query.replace('4f83e30f', '4f83e30e')))), 'bad-signature');
  assert.equal(h.sent.length, 0);
});

// ---------------------------------------------------------------- describe

test('describe matches the Rust twin but for the slot name', () => {
  const info = TwoPayNow.describe();
  assert.equal(info.name, '2paynow-js');
  assert.equal(info.version, VERSION);
  assert.equal(VERSION, JSON.parse(readFileSync(new URL('../package.json', import.meta.url))).version);
  assert.deepEqual(info.methods, ['wechat_native', 'alipay_native', 'wechat_wap', 'alipay_wap']);
  assert.deepEqual(info.currencies, ['EUR', 'CNY']);
  assert.deepEqual(info.egressHosts, ['www.2paynow.com']);
  const c = info.capabilities;
  assert.ok(c.paymentNotifications && c.close && !c.refundNotifications && !c.partialRefunds && !c.refundQuery);
  assert.ok(!c.queryByMerchantOrderNo);
  const def = (n) => info.configSchema.find((f) => f.name === n).default;
  assert.equal(def('timestamp_unit'), 'milliseconds');
  assert.equal(def('verify_answer_sign'), 'false');
  assert.deepEqual(
    info.configSchema.map((f) => f.name),
    ['mid', 'key', 'base_url', 'timestamp_unit', 'wechat_type', 'alipay_type', 'it_b_pay', 'wap_wechat_url', 'wap_alipay_url', 'return_url', 'verify_answer_sign'],
  );
  assert.ok(info.configSchema.some((f) => f.name === 'key' && f.kind === 'secret' && f.default === undefined));
});

// ---------------------------------------------------------------- create

test('a native order is precreated with a millisecond signature and answers its QR code', () => {
  const { respond, seen } = provider({ precreate: { status: 200, trade_no: 'A1', qr_code: 'weixin://wxpay/bizpayurl?pr=x' } });
  const h = harness().respond(respond);
  const created = h.unifiedOrder({ ...order('wechat_native', 'ORDER-1', 899, 'EUR'), expiresAt: 1_700_000_000n + 90n });
  assert.deepEqual(created.action, { tag: 'qr-code', val: 'weixin://wxpay/bizpayurl?pr=x' });
  assert.equal(created.order.providerTradeNo, 'A1');
  const p = seen[0];
  assert.equal(p.timestamp, '1700000000000');
  assert.equal(p.sign, md5Sign('precreate', MID, '1700000000000', KEY));
  assert.equal(p.type, '1');
  assert.equal(p.amount, '8.99');
  assert.equal(p.currency, 'EUR');
  assert.equal(p.it_b_pay, '2m');
  assert.equal(p.notify_url, 'https://payhost.test/v1/notify/test/m1');
  assert.deepEqual(JSON.parse(p.passback_parameters), { merchant_order_no: 'ORDER-1' });
});

test('a WAP order is a signed redirect and sends nothing; it needs a return URL', () => {
  const h = harness();
  const created = h.unifiedOrder(order('alipay_wap', 'ORDER-2', 100, 'CNY'));
  assert.equal(created.action.tag, 'redirect');
  assert.ok(created.action.val.startsWith('http://2paynow.com/wap/wappay/pay.html?'));
  const p = paramsOf(created.action.val);
  assert.equal(p.function, 'wap_precreate');
  assert.equal(p.merchant_trade_no, 'ORDER-2');
  assert.equal(p.return_url, 'https://shop.example/paid');
  assert.equal(p.amount, '1.00');
  assert.equal(h.sent.length, 0);
  const wechat = paramsOf(harness().unifiedOrder(order('wechat_wap', 'ORDER-3', 100, 'EUR')).action.val);
  assert.equal(wechat.it_b_pay, undefined);
  const bare = new Harness(TwoPayNow).text('mid', MID).secret('key', KEY).withSchemaDefaults();
  assert.equal(kindOf(() => bare.unifiedOrder(order('wechat_wap', 'ORDER-3', 100, 'EUR'))), 'invalid-config');
});

test('what 2paynow cannot take is refused before sending', () => {
  const h = harness();
  assert.equal(kindOf(() => h.unifiedOrder(order('wechat_mini_program', 'O-1', 1, 'EUR'))), 'unsupported');
  assert.equal(kindOf(() => h.unifiedOrder(order('wechat_native', 'O 1', 1, 'EUR'))), 'invalid-request');
  assert.equal(kindOf(() => h.unifiedOrder(order('wechat_native', 'O-1', 0, 'EUR'))), 'invalid-request');
  assert.equal(kindOf(() => h.unifiedOrder(order('wechat_native', 'O-1', 1, 'USD'))), 'invalid-request');
  assert.equal(kindOf(() => h.unifiedOrder({ ...order('wechat_native', 'O-1', 1, 'EUR'), expiresAt: 1n })), 'invalid-request');
  assert.equal(h.sent.length, 0);
});

test('bad configuration names the field', () => {
  const msg = (h) => {
    try {
      h.query({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } });
    } catch (e) {
      return `${e.kind}: ${e.message}`;
    }
  };
  assert.equal(msg(harness().text('mid', 'abc')), 'invalid-config: field `mid` is `abc`; 2paynow merchant ids are numeric');
  assert.equal(msg(harness().text('timestamp_unit', 'minutes')), 'invalid-config: field `timestamp_unit` is `minutes`, expected `milliseconds` or `seconds`');
  assert.equal(msg(harness().text('verify_answer_sign', 'yes')), 'invalid-config: field `verify_answer_sign` is `yes`, expected `true` or `false`');
  assert.equal(msg(harness().text('key', 'plain')), 'invalid-config: field `key` must be configured as a secret');
});

test('refusals and outages keep their retryability; answers are verified when configured', () => {
  const refusal = (status, body) => harness().respond(() => http.response(status, 'application/json', JSON.stringify(body)));
  const q = { order: { merchantOrderNo: '', providerTradeNo: 'A1' } };
  const caught = (h) => {
    try {
      h.query(q);
    } catch (e) {
      return e;
    }
  };
  const e403 = caught(refusal(200, { status: 403, error_info: 'mid not exist' }));
  assert.deepEqual([e403.kind, e403.code, e403.retryable], ['provider-rejected', 'STATUS_403', false]);
  assert.match(e403.message, /mid not exist/);
  const e503 = caught(refusal(503, {}));
  assert.deepEqual([e503.code, e503.retryable], ['HTTP_503', true]);
  const good = queryAnswer('A1', 'TRADE_SUCCESS', '8.99', 'EUR');
  const verified = harness().text('verify_answer_sign', 'true').respond(() => answer(good));
  assert.equal(verified.query(q).state, 'paid');
  const forged = harness().text('verify_answer_sign', 'true').respond(() => answer({ ...good, sign: '0'.repeat(32) }));
  assert.equal(kindOf(() => forged.query(q)), 'bad-signature');
});

// ---------------------------------------------------------------- query and close

test('trans_status maps conservatively and money is exact', () => {
  for (const [word, state] of [['TRADE_SUCCESS', 'paid'], ['TRADE_CLOSED', 'closed'], ['TRADE_FAILED', 'failed'], ['UNKNOWN', 'pending'], ['WHATEVER', 'pending']]) {
    const h = harness().respond(() => answer(queryAnswer('A1', word, '8.99', 'EUR')));
    const st = h.query({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } });
    assert.equal(st.state, state, word);
    assert.equal(st.providerState, word);
    assert.deepEqual(st.amount, { minor: 899n, currency: 'EUR' });
  }
  const numeric = harness().respond(() => answer({ ...queryAnswer('A1', 'TRADE_SUCCESS', '0', 'EUR'), amount: 12.5 }));
  assert.equal(numeric.query({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } }).amount.minor, 1250n);
});

test('a query is by trade_no and falls back to wap_query by merchant number; another trade is refused', () => {
  const { respond, seen } = provider({
    query: { status: 404, error_info: 'no such trade' },
    wap_query: queryAnswer('A7', 'TRADE_SUCCESS', '1.00', 'EUR', 'wap_query'),
  });
  const st = harness().respond(respond).query({ order: { merchantOrderNo: 'ORDER-7', providerTradeNo: 'A7' } });
  assert.equal(st.state, 'paid');
  assert.deepEqual(seen.map((p) => p.function), ['query', 'wap_query']);
  assert.equal(seen[1].merchant_trade_no, 'ORDER-7');
  const other = harness().respond(() => answer(queryAnswer('B9', 'TRADE_SUCCESS', '1.00', 'EUR')));
  assert.equal(kindOf(() => other.query({ order: { merchantOrderNo: 'O', providerTradeNo: 'A7' } })), 'malformed-response');
});

test('close cancels by trade_no; a refused cancel answers what the query says or the refusal', () => {
  const { respond, seen } = provider({ cancel: { status: 200 } });
  const st = harness().respond(respond).close({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } });
  assert.equal(st.state, 'closed');
  assert.equal(seen[0].trade_no, 'A1');
  const paid = provider({ cancel: { status: 409, error_info: 'paid' }, query: queryAnswer('A1', 'TRADE_SUCCESS', '1.00', 'EUR') });
  assert.equal(harness().respond(paid.respond).close({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } }).state, 'paid');
  const pending = provider({ cancel: { status: 409, error_info: 'busy' }, query: queryAnswer('A1', 'UNKNOWN', '1.00', 'EUR') });
  assert.equal(kindOf(() => harness().respond(pending.respond).close({ order: { merchantOrderNo: 'O-1', providerTradeNo: 'A1' } })), 'provider-rejected');
});

test('refunds are unsupported and say why', () => {
  for (const op of ['refund', 'refundQuery']) {
    try {
      harness()[op]({});
      assert.fail('refund answered');
    } catch (e) {
      assert.equal(e.kind, 'unsupported');
      assert.match(e.message, /no publicly documented refund call/);
    }
  }
});

// ---------------------------------------------------------------- notifications

test('a notification is confirmed by query and reports the query (GET, POST, form body)', () => {
  for (const [method, asBody] of [['get', false], ['post', false], ['post', true]]) {
    const { respond, seen } = provider({ query: queryAnswer('A20', 'TRADE_SUCCESS', '8.99', 'EUR') });
    const n = notification(false);
    const out = harness().respond(respond).parseNotify(asBody ? inbound(method, '', n) : inbound(method, n));
    assert.equal(encoding.fromUtf8(out.ack.body), 'success');
    assert.equal(out.events.length, 1);
    const st = out.events[0].val;
    assert.equal(out.events[0].tag, 'payment');
    assert.equal(st.state, 'paid');
    assert.equal(st.order.merchantOrderNo, 'ORDER-20');
    assert.equal(st.order.providerTradeNo, 'A20');
    assert.equal(st.order.channelTransactionId, '4200000020');
    assert.equal(st.amount.minor, 899n);
    assert.deepEqual(seen.map((p) => [p.function, p.trade_no]), [['query', 'A20']]);
  }
});

test('a WAP notification is confirmed by wap_query with payhost\'s number; unpaid reports pending', () => {
  const { respond, seen } = provider({ wap_query: queryAnswer('A20', 'TRADE_SUCCESS', '8.99', 'EUR', 'wap_query') });
  const out = harness().respond(respond).parseNotify(inbound('get', notification(true)));
  assert.equal(out.events[0].val.state, 'paid');
  assert.equal(seen[0].merchant_trade_no, 'ORDER-20');
  const unpaid = harness().respond(() => answer(queryAnswer('A20', 'UNKNOWN', '8.99', 'EUR')));
  const st = unpaid.parseNotify(inbound('get', notification(false))).events[0].val;
  assert.equal(st.state, 'pending');
  // Unsigned and unconfirmed: the third number is not taken.
  assert.equal(st.order.channelTransactionId, undefined);
});

test('forged and contradicting notifications are refused', () => {
  const confirmed = () => harness().respond(() => answer(queryAnswer('A20', 'TRADE_SUCCESS', '8.99', 'EUR')));
  for (const [changes, kind] of [
    [{ sign: '0'.repeat(32) }, 'bad-signature'],
    [{ sign: '' }, 'bad-signature'],
    [{ mid: '4002563370' }, 'bad-signature'],
    [{ timestamp: '1700000100001' }, 'bad-signature'],
    [{ amount: '9.99' }, 'invalid-request'],
    [{ currency: 'CNY', amount: '8.99' }, 'invalid-request'],
    [{ amount: '8.999' }, 'invalid-request'],
    [{ trade_no: '' }, 'invalid-request'],
    [{ passback_parameters: '{"merchant_order_no":"BAD ORDER"}' }, 'invalid-request'],
  ]) {
    assert.equal(kindOf(() => confirmed().parseNotify(inbound('get', notification(false, changes)))), kind, JSON.stringify(changes));
  }
  assert.equal(kindOf(() => confirmed().parseNotify(inbound('put', notification(false)))), 'invalid-request');
  assert.equal(kindOf(() => confirmed().parseNotify(inbound('get', `${notification(false)}&mid=${MID}`))), 'invalid-request');
  const otherTrade = harness().respond(() => answer(queryAnswer('A21', 'TRADE_SUCCESS', '8.99', 'EUR', 'wap_query')));
  assert.equal(kindOf(() => otherTrade.parseNotify(inbound('get', notification(true)))), 'invalid-request');
});

test('parse_notify never throws anything but the contract\'s errors on arbitrary input', () => {
  // A seeded generator: the same cases every run.
  let s = 0x2badc0de;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0), s >>> 8);
  const valid = notification(false);
  for (let i = 0; i < 300; i++) {
    const bytes = encoding.utf8(valid);
    for (let j = 0; j < 1 + (next() % 6); j++) bytes[next() % bytes.length] = next() % 256;
    const cut = bytes.subarray(0, next() % (bytes.length + 1));
    const h = harness().respond(() => answer(queryAnswer('A20', 'TRADE_SUCCESS', '8.99', 'EUR')));
    for (const req of [inbound('get', encoding.fromUtf8Lossy(cut)), inbound('post', '', cut)]) {
      try {
        h.parseNotify(req);
      } catch (e) {
        assert.ok(e instanceof AdapterError, `case ${i}: ${e && e.stack}`);
      }
    }
  }
});
