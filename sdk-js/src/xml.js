// Flat XML documents as WeChat Pay v2 uses them:
// `<xml><name>value</name>...</xml>`, one level of elements, values as
// text or CDATA.

import { FormatError } from './error.js';
import { fromUtf8 } from './encoding.js';

const escape = (v) =>
  v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

/** `<root><name>value</name>...</root>`, values escaped, pairs in the given order. */
export const encode = (root, pairs) => `<${root}>${pairs.map(([k, v]) => `<${k}>${escape(v)}</${k}>`).join('')}</${root}>`;

const ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function unescape(text, at) {
  return text.replace(/&([^;&]*);?/g, (whole, name) => {
    if (!whole.endsWith(';')) throw new FormatError(`invalid XML at byte ${at}: unterminated entity`);
    if (ENTITIES[name]) return ENTITIES[name];
    const m = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(name);
    const cp = m && (m[1][0] === 'x' ? parseInt(m[1].slice(1), 16) : parseInt(m[1], 10));
    if (!m || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      throw new FormatError(`invalid XML at byte ${at}: unknown entity \`&${name};\``);
    }
    return String.fromCodePoint(cp);
  });
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.\-:]*/;

/**
 * A flat document: `{ root, fields }` with `fields` a Map of name to text.
 * Nested elements, duplicate fields, attributes on fields and trailing
 * garbage are errors: a provider message that is not flat is not what we expect.
 */
export function decode(input) {
  const text = typeof input === 'string' ? input : fromUtf8(input, 'XML');
  let i = 0;
  const fail = (why) => new FormatError(`invalid XML at byte ${i}: ${why}`);
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const skipMisc = () => {
    for (;;) {
      skipSpace();
      if (text.startsWith('<?', i) || text.startsWith('<!--', i)) {
        const end = text.indexOf(text.startsWith('<?', i) ? '?>' : '-->', i);
        if (end < 0) throw fail('unterminated declaration or comment');
        i = end + (text.startsWith('<?', i) ? 2 : 3);
      } else if (text.startsWith('<!DOCTYPE', i)) {
        throw fail('a DOCTYPE is not accepted');
      } else return;
    }
  };
  const openTag = () => {
    if (text[i] !== '<') throw fail('expected an element');
    const m = NAME.exec(text.slice(i + 1, i + 257));
    if (!m) throw fail('expected an element name');
    i += 1 + m[0].length;
    skipSpace();
    // The root may carry attributes (ignored); fields may not.
    const close = text.indexOf('>', i);
    if (close < 0) throw fail('unterminated tag');
    const rest = text.slice(i, close);
    i = close + 1;
    return { name: m[0], attributes: rest.trim(), empty: rest.endsWith('/') };
  };
  skipMisc();
  const root = openTag();
  const fields = new Map();
  if (!root.empty) {
    for (;;) {
      skipSpace();
      if (text.startsWith('</', i)) break;
      if (text.startsWith('<!--', i)) {
        skipMisc();
        continue;
      }
      const field = openTag();
      if (field.attributes && !field.empty) throw fail(`attributes on field \`${field.name}\``);
      let value = '';
      if (!field.empty) {
        for (;;) {
          if (text.startsWith('<![CDATA[', i)) {
            const end = text.indexOf(']]>', i);
            if (end < 0) throw fail('unterminated CDATA');
            value += text.slice(i + 9, end);
            i = end + 3;
          } else if (text.startsWith('</', i)) {
            break;
          } else if (text[i] === '<') {
            throw fail(`nested element in \`${field.name}\``);
          } else {
            const next = text.indexOf('<', i);
            if (next < 0) throw fail(`unterminated field \`${field.name}\``);
            value += unescape(text.slice(i, next), i);
            i = next;
          }
        }
        const end = `</${field.name}>`;
        if (!text.startsWith(end, i)) throw fail(`\`${field.name}\` is not closed`);
        i += end.length;
      }
      if (fields.has(field.name)) throw fail(`duplicate field \`${field.name}\``);
      fields.set(field.name, value);
    }
    const end = `</${root.name}>`;
    if (!text.startsWith(end, i)) throw fail(`\`${root.name}\` is not closed`);
    i += end.length;
  }
  skipMisc();
  if (i < text.length) throw fail('trailing content after the root element');
  return { root: root.name, fields };
}
