import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encoding, form, json, http, FormatError } from '../src/index.js';

test('hex and base64 as providers spell them', () => {
  const bytes = new Uint8Array([0, 1, 0xab, 0xff]);
  assert.equal(encoding.hexLower(bytes), '0001abff');
  assert.equal(encoding.hexUpper(bytes), '0001ABFF');
  assert.deepEqual(encoding.hexDecode('0001AbfF'), bytes);
  assert.throws(() => encoding.hexDecode('abc'));
  assert.throws(() => encoding.hexDecode('zz'));
  for (const [raw, b64] of [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foob', 'Zm9vYg==']]) {
    assert.equal(encoding.base64Encode(encoding.utf8(raw)), b64);
    assert.equal(encoding.fromUtf8(encoding.base64Decode(b64)), raw);
  }
  assert.deepEqual(encoding.base64Decode(' Zm9v\n'), encoding.utf8('foo'));
  assert.throws(() => encoding.base64Decode('Zm9'));
  assert.throws(() => encoding.base64Decode('Zm9v!==='));
  assert.throws(() => encoding.fromUtf8(new Uint8Array([0xff])));
  assert.ok(encoding.constantTimeEqual('abc', 'abc'));
  assert.ok(!encoding.constantTimeEqual('abc', 'abd'));
  assert.ok(!encoding.constantTimeEqual('abc', 'ab'));
});

test('form encoding matches the WHATWG serializer, reserved characters and UTF-8 included', () => {
  const pairs = [['a b', 'x&y=z'], ['中', '文'], ['k', '*-._~!']];
  const enc = form.encode(pairs);
  assert.equal(enc, 'a+b=x%26y%3Dz&%E4%B8%AD=%E6%96%87&k=*-._%7E%21');
  assert.equal(enc, new URLSearchParams(pairs).toString());
  assert.deepEqual(form.decode(enc), pairs);
  assert.deepEqual(form.decode(encoding.utf8(enc)), pairs);
  assert.deepEqual(form.decode('a&b=&=c&%zz=%E4'), [['a', ''], ['b', ''], ['', 'c'], ['%zz', '\ufffd']]);
});

test('JSON: invalid bodies are format errors, numbers read exactly or not at all', () => {
  assert.deepEqual(json.fromBody(encoding.utf8('{"a":1}')), { a: 1 });
  assert.throws(() => json.fromBody(encoding.utf8('{oops')), /invalid JSON/);
  assert.throws(() => json.fromBody(new Uint8Array([0xff])), /UTF-8/);
  // Deep nesting parses or is a FormatError, never anything else.
  try {
    assert.ok(Array.isArray(json.fromBody('['.repeat(10000) + ']'.repeat(10000))));
  } catch (e) {
    assert.ok(e instanceof FormatError, String(e));
  }
  assert.equal(json.numberText(8.99), '8.99');
  assert.equal(json.numberText(200), '200');
  assert.throws(() => json.numberText(2 ** 60));
  assert.ok(json.isObject({}) && !json.isObject([]) && !json.isObject(null));
  assert.equal(encoding.fromUtf8(json.toBody({ a: 'b' })), '{"a":"b"}');
});

test('http helpers', () => {
  assert.equal(http.join('https://a.b/', '/pay/x'), 'https://a.b/pay/x');
  assert.equal(http.join('https://a.b', 'pay/x'), 'https://a.b/pay/x');
  const r = http.post('u', 'text/xml', 'b');
  assert.equal(http.header(r.headers, 'Content-Type'), 'text/xml');
  assert.equal(http.header(r.headers, 'x'), undefined);
  assert.ok(http.sameRequest(r, http.post('u', 'text/xml', 'b')));
  assert.ok(!http.sameRequest(r, http.post('u', 'text/xml', 'c')));
  assert.ok(!http.sameRequest(r, http.get('u')));
});
