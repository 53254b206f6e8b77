// Acme Pay's messages, named as its documentation names them. Acme Pay is
// fictitious: replace these with your provider's. Every call is a JSON
// POST of string fields; every answer a JSON object of string fields;
// notifications are form fields. All of them are signed (`sign`).

import { FormatError, form, invalidRequest, json, malformed } from '{{sdk}}/src/index.js';

export const CREATE_ORDER = '/v1/orders';
export const QUERY_ORDER = '/v1/orders/query';
export const CLOSE_ORDER = '/v1/orders/close';
export const CREATE_REFUND = '/v1/refunds';
export const QUERY_REFUND = '/v1/refunds/query';

/** `result` of an answer that did what was asked. */
export const RESULT_OK = 'OK';
/** The `error_code` Acme Pay says is worth a retry. */
export const SYSTEM_BUSY = 'SYSTEM_BUSY';

/** `event` of a payment and of a refund notification. */
export const PAYMENT_EVENT = 'payment';
export const REFUND_EVENT = 'refund';

/** The contract's methods this provider offers: a QR code to scan. */
export const QR_CODE = 'wechat_native';
export const METHODS = Object.freeze([QR_CODE]);

/**
 * A message's fields: a Map of name to text (a Map, so a field named
 * `__proto__` is just a field). `sorted` gives them in signing order.
 */
export const sorted = (fields) => [...fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** Adds `value` under `name` unless it is empty: empty values are never signed, so never sent either. */
export function put(fields, name, value) {
  if (value !== undefined && value !== '') fields.set(name, value);
}

/** The JSON body of a request: the fields as one object, in signing order. */
export const toBody = (fields) => json.toBody(Object.fromEntries(sorted(fields)));

/** An answer's fields: a JSON object whose values are all strings. */
export function answerFields(body, what) {
  let value;
  try {
    value = json.fromBody(body);
  } catch (e) {
    if (e instanceof FormatError) throw malformed(`${what} is not a JSON object: ${e.message}`);
    throw e;
  }
  if (!json.isObject(value)) throw malformed(`${what} is not a JSON object`);
  const fields = new Map();
  for (const [name, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw malformed(`${what}: \`${name}\` is not a string`);
    fields.set(name, v);
  }
  return fields;
}

/** A notification's form fields; a name given twice is refused, since which value was signed would be ambiguous. */
export function notificationFields(body) {
  const fields = new Map();
  for (const [name, value] of form.decode(body)) {
    if (fields.has(name)) throw invalidRequest(`notification repeats the field \`${name}\``);
    fields.set(name, value);
  }
  return fields;
}

/** A field that must be there and not empty. */
export function required(fields, name, what) {
  const v = fields.get(name);
  if (!v) throw malformed(`${what} lacks \`${name}\``);
  return v;
}

/** A field that may be absent (empty counts as absent). */
export const optional = (fields, name) => fields.get(name) || undefined;

const TRADE_STATES = new Map([
  ['PENDING', 'pending'],
  ['PAID', 'paid'],
  ['REFUNDED', 'refunded'],
  ['CLOSED', 'closed'],
  ['FAILED', 'failed'],
]);

const REFUND_STATES = new Map([
  ['PROCESSING', 'pending'],
  ['SUCCESS', 'succeeded'],
  ['FAILED', 'failed'],
]);

/** `status` of an order as the contract's trade-state, or undefined. */
export const tradeState = (status) => TRADE_STATES.get(status);

/** `refund_status` of a refund as the contract's refund-state, or undefined. */
export const refundState = (status) => REFUND_STATES.get(status);
