// Building the requests the host performs and the answers notifications get.

import { utf8 } from './encoding.js';

const bytes = (body) => (typeof body === 'string' ? utf8(body) : body ?? new Uint8Array());

/** A GET without body. */
export const get = (url, headers = []) => ({ method: 'get', url, headers, body: new Uint8Array(), clientIdentity: undefined });

/** A POST with a body (text or bytes) of the given content type. */
export const post = (url, contentType, body) => ({
  method: 'post',
  url,
  headers: [['content-type', contentType]],
  body: bytes(body),
  clientIdentity: undefined,
});

/** An HTTP answer with a body of the given content type (acknowledgements). */
export const response = (status, contentType, body) => ({
  status,
  headers: [['content-type', contentType]],
  body: bytes(body),
});

/** The first value of a header, compared case-insensitively. */
export function header(headers, name) {
  const lower = name.toLowerCase();
  const found = headers.find(([k]) => k.toLowerCase() === lower);
  return found ? found[1] : undefined;
}

/** A configured base URL and a path, without doubling the slash. */
export const join = (base, path) => `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two requests are the same (method, URL, headers, body, identity). */
export function sameRequest(a, b) {
  return (
    a.method === b.method &&
    a.url === b.url &&
    a.clientIdentity === b.clientIdentity &&
    a.headers.length === b.headers.length &&
    a.headers.every(([k, v], i) => b.headers[i][0] === k && b.headers[i][1] === v) &&
    sameBytes(a.body, b.body)
  );
}
