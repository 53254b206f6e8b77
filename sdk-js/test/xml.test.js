import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xml, encoding } from '../src/index.js';

test('flat documents round trip with escapes and CDATA', () => {
  const doc = xml.encode('xml', [['a', '1 < 2 & "x"'], ['b', '中文']]);
  assert.equal(doc, '<xml><a>1 &lt; 2 &amp; &quot;x&quot;</a><b>中文</b></xml>');
  const { root, fields } = xml.decode(encoding.utf8(doc));
  assert.equal(root, 'xml');
  assert.deepEqual([...fields], [['a', '1 < 2 & "x"'], ['b', '中文']]);
  const wx = '<?xml version="1.0"?>\n<xml>\n <return_code><![CDATA[SUCCESS]]></return_code>\n <n>&#x4E2D;&#25991;</n><e/></xml>\n';
  assert.deepEqual([...xml.decode(wx).fields], [['return_code', 'SUCCESS'], ['n', '中文'], ['e', '']]);
});

test('what is not flat or not well formed is refused', () => {
  for (const bad of [
    '<xml><a><b>1</b></a></xml>',
    '<xml><a>1</a><a>2</a></xml>',
    '<xml><a>1</a></xml>trailing',
    '<xml><a>1</xml>',
    '<xml><a>1</a>',
    '<xml><a>&bogus;</a></xml>',
    '<xml><a>&amp</a></xml>',
    '<!DOCTYPE x [<!ENTITY e "x">]><xml/>',
    '',
    'not xml',
    '<xml><a x="1">v</a></xml>',
  ]) {
    assert.throws(() => xml.decode(bad), /invalid XML/, bad);
  }
  assert.throws(() => xml.decode(new Uint8Array([0x3c, 0xff])), /UTF-8/);
});
