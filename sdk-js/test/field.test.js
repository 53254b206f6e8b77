import { test } from 'node:test';
import assert from 'node:assert/strict';
import { field, canonical, AdapterError } from '../src/index.js';

const kind = (f) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof AdapterError, String(e));
    return `${e.kind}: ${e.message}`;
  }
  return 'ok';
};

test('merchant numbers, text lengths, amounts and expiry name the field', () => {
  assert.equal(kind(() => field.orderNo('A-1_b', 'merchant_order_no', 1, 32, '_-')), 'ok');
  assert.match(kind(() => field.orderNo('A 1', 'merchant_order_no', 1, 32, '_-')), /invalid-request: merchant_order_no `A 1` contains ` `/);
  assert.match(kind(() => field.orderNo('', 'refund_no', 1, 32, '')), /refund_no `` must be 1 to 32 characters, has 0/);
  assert.equal(kind(() => field.chars('中文', 'description', 1, 2)), 'ok');
  assert.match(kind(() => field.chars('中文x', 'description', 1, 2)), /has 3/);
  assert.match(kind(() => field.positive(0n, 'amount.minor')), /amount.minor must be greater than 0/);
  assert.match(kind(() => field.currency('XYZ', 'amount.currency')), /not an ISO 4217/);
  const eur = (minor) => ({ minor: BigInt(minor), currency: 'EUR' });
  assert.equal(kind(() => field.refundAmount(eur(5), eur(10))), 'ok');
  assert.match(kind(() => field.refundAmount(eur(11), eur(10))), /exceeds/);
  assert.match(kind(() => field.refundAmount({ minor: 1n, currency: 'CNY' }, eur(10))), /differs/);
  assert.equal(field.expiry(undefined, 100), undefined);
  assert.equal(field.expiry(200n, 100), 200);
  assert.match(kind(() => field.expiry(100n, 100)), /not after/);
  assert.match(kind(() => field.notifyUrlWithoutQuery('https://x/?a=1')), /invalid-config/);
  assert.equal(field.clientIp({ clientIp: '203.0.113.7' }, 'ip'), '203.0.113.7');
  assert.equal(field.clientIp({ clientIp: '2001:db8::1' }, 'ip'), '2001:db8::1');
  assert.match(kind(() => field.clientIp({ clientIp: '999.1.1.1' }, 'ip')), /not an IPv4/);
  assert.match(kind(() => field.clientIp({}, 'spbill_create_ip')), /required \(spbill_create_ip\)/);
});

test('rules are declared once and checked the same way', () => {
  const rule = field.Rule.orderNo('merchant_order_no', 1, 32, '_-');
  assert.deepEqual(field.declare([rule, field.CLIENT_IP]), [
    { field: 'merchant_order_no', minLength: 1, maxLength: 32, allowed: '_-', requiredFor: [] },
    { field: 'payer.client_ip', minLength: 1, maxLength: 64, allowed: undefined, requiredFor: ['*'] },
  ]);
  assert.ok(field.MINI_PROGRAM_OPENID.required('wechat_mini_program'));
  assert.ok(!field.MINI_PROGRAM_OPENID.required('wechat_native'));
  assert.match(kind(() => field.MINI_PROGRAM_OPENID.checkFor('wechat_mini_program', '')), /payer.openid is required for method `wechat_mini_program`/);
  assert.equal(field.MINI_PROGRAM_OPENID.checkFor('wechat_native', undefined), undefined);
  assert.match(kind(() => rule.check('a*b')), /contains `\*`/);
  assert.deepEqual(field.config('key', 'The key', 'secret', true), { name: 'key', description: 'The key', kind: 'secret', required: true, default: undefined });
});

test('canonical strings sort by name and skip empty values', () => {
  const pairs = [['mch_id', '1'], ['appid', 'wx'], ['sign', 'S'], ['empty', ''], ['body', 'a b']];
  assert.equal(canonical.sortedPairs(pairs, ['sign']), 'appid=wx&body=a b&mch_id=1');
  assert.equal(canonical.sortedPairsKeepEmpty(pairs, ['sign']), 'appid=wx&body=a b&empty=&mch_id=1');
  assert.equal(canonical.sortedPairs([['b', '2'], ['a', '1'], ['b', '1']]), 'a=1&b=2&b=1');
  assert.ok(canonical.hexSignatureMatches('abcdef', 'ABCDEF'));
  assert.ok(!canonical.hexSignatureMatches('abcdee', 'ABCDEF'));
});
