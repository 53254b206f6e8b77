import { test } from 'node:test';
import assert from 'node:assert/strict';
import { money } from '../src/index.js';

const m = (minor, currency) => ({ minor: BigInt(minor), currency });

test('to decimal by the currency exponent', () => {
  assert.equal(money.toDecimal(m(2499, 'EUR')), '24.99');
  assert.equal(money.toDecimal(m(5, 'EUR')), '0.05');
  assert.equal(money.toDecimal(m(500, 'JPY')), '500');
  assert.equal(money.toDecimal(m(1, 'BHD')), '0.001');
  assert.equal(money.toDecimal(m(8_000_000, 'CNY')), '80000.00');
  assert.equal(money.toDecimal({ minor: 18446744073709551615n, currency: 'EUR' }), '184467440737095516.15');
  assert.throws(() => money.toDecimal(m(1, 'XXX')));
  assert.throws(() => money.toDecimal(m(1, 'eur')));
  // Floats and unsafe integers never stand for money.
  assert.throws(() => money.toDecimal({ minor: 0.1, currency: 'EUR' }));
  assert.throws(() => money.toDecimal({ minor: 2 ** 60, currency: 'EUR' }));
  assert.throws(() => money.toDecimal({ minor: -1n, currency: 'EUR' }));
});

test('from decimal is exact', () => {
  assert.deepEqual(money.fromDecimal('24.99', 'EUR'), m(2499, 'EUR'));
  assert.deepEqual(money.fromDecimal('24.9', 'EUR'), m(2490, 'EUR'));
  assert.deepEqual(money.fromDecimal('24', 'EUR'), m(2400, 'EUR'));
  assert.deepEqual(money.fromDecimal('24.990', 'EUR'), m(2499, 'EUR'));
  assert.deepEqual(money.fromDecimal('500', 'JPY'), m(500, 'JPY'));
  assert.deepEqual(money.fromDecimal('0.001', 'BHD'), m(1, 'BHD'));
  for (const bad of ['24.999', '-1', '+1', '1e3', '', '.5', '5.', '1,00', 'abc', '99999999999999999999999', ' 1']) {
    assert.throws(() => money.fromDecimal(bad, 'EUR'), undefined, bad);
  }
  assert.throws(() => money.fromDecimal('500.5', 'JPY'));
});

test('round trip many values', () => {
  for (const minor of [0n, 1n, 9n, 10n, 99n, 100n, 101n, 123456789n, 18446744073709551615n]) {
    for (const c of ['EUR', 'JPY', 'BHD', 'CNY']) {
      const s = money.toDecimal({ minor, currency: c });
      assert.deepEqual(money.fromDecimal(s, c), { minor, currency: c });
    }
  }
});

test('minor strings and comparisons', () => {
  assert.deepEqual(money.fromMinorString('100', 'CNY'), m(100, 'CNY'));
  for (const bad of ['1.00', '-1', '', '18446744073709551616']) assert.throws(() => money.fromMinorString(bad, 'CNY'), undefined, bad);
  assert.ok(money.same(m(1, 'EUR'), { minor: 1, currency: 'EUR' }));
  assert.ok(!money.same(m(1, 'EUR'), m(1, 'CNY')));
  assert.equal(money.WECHAT_PAY_CURRENCIES.length, 17);
});
