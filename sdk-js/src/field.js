// Checks of request fields against a provider's rules, before anything is
// sent: a value the provider would refuse is the caller's error
// (`invalid-request`) naming the field, never a provider round trip.

import { invalidConfig, invalidRequest } from './error.js';
import { exponent } from './money.js';

const ALNUM = /^[A-Za-z0-9]$/;

/** A merchant number: `min..max` ASCII letters, digits and `extra` characters. */
export function orderNo(value, field, min, max, extra) {
  for (const c of value) {
    if (!ALNUM.test(c) && !extra.includes(c)) {
      throw invalidRequest(`${field} \`${value}\` contains \`${c}\`; allowed are letters, digits and \`${extra}\``);
    }
  }
  if (value.length < min || value.length > max) {
    throw invalidRequest(`${field} \`${value}\` must be ${min} to ${max} characters, has ${value.length}`);
  }
}

/** Free text of `min..max` characters (code points, not UTF-16 units). */
export function chars(value, field, min, max) {
  const n = [...value].length;
  if (n < min || n > max) throw invalidRequest(`${field} must be ${min} to ${max} characters, has ${n}`);
}

/** An ISO 4217 code the SDK knows the minor unit of. */
export function currency(code, field) {
  try {
    exponent(code);
  } catch {
    throw invalidRequest(`${field} \`${code}\` is not an ISO 4217 currency code`);
  }
}

/** An amount a provider can charge or refund: above zero. */
export function positive(minor, field) {
  if (BigInt(minor) <= 0n) throw invalidRequest(`${field} must be greater than 0`);
}

/** A refund against its order: above zero, same currency, not more than the order. */
export function refundAmount(amount, orderAmount) {
  positive(amount.minor, 'amount.minor');
  if (amount.currency !== orderAmount.currency) {
    throw invalidRequest(
      `amount.currency \`${amount.currency}\` differs from order_amount.currency \`${orderAmount.currency}\``,
    );
  }
  if (BigInt(amount.minor) > BigInt(orderAmount.minor)) {
    throw invalidRequest(`amount.minor ${amount.minor} exceeds order_amount.minor ${orderAmount.minor}`);
  }
}

/** An order's expiry (Unix seconds, BigInt or number), when set: after `now`. Answers a number. */
export function expiry(expiresAt, now) {
  if (expiresAt === undefined || expiresAt === null) return undefined;
  const at = Number(expiresAt);
  if (at <= now) throw invalidRequest(`expires_at ${at} is not after the operation's time ${now}`);
  return at;
}

/** A notify URL without a query string, which providers that sign it refuse. */
export function notifyUrlWithoutQuery(url) {
  if (url.includes('?')) throw invalidConfig(`notify URL \`${url}\` has a query string, which the provider rejects`);
  return url;
}

/** The payer's IP, which `wireName` requires: present and an IPv4 or IPv6 address. */
export function clientIp(payer, wireName) {
  const ip = payer.clientIp;
  if (!ip) throw invalidRequest(`payer.client_ip is required (${wireName})`);
  const v4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
  const v6 = /^[0-9A-Fa-f:.]+$/;
  if (!v4.test(ip) && !(ip.includes(':') && v6.test(ip))) {
    throw invalidRequest(`payer.client_ip \`${ip}\` is not an IPv4 or IPv6 address`);
  }
  return ip;
}

/**
 * A provider's limit on one request field, written once: `describe`
 * declares it (`declare`; the host checks it before calling) and the
 * adapter checks it all the same (`rule.check`).
 */
export class Rule {
  constructor(field, min, max, allowed = undefined, requiredFor = []) {
    Object.assign(this, { field, min, max, allowed, requiredFor });
    Object.freeze(this);
  }

  static orderNo(field, min, max, extra) {
    return new Rule(field, min, max, extra);
  }

  static text(field, min, max) {
    return new Rule(field, min, max);
  }

  /** The same rule, required for these methods (`['*']`: every method). */
  require(methods) {
    return new Rule(this.field, this.min, this.max, this.allowed, methods);
  }

  required(method) {
    return this.requiredFor.some((m) => m === '*' || m === method);
  }

  /** `value` of a request paid by `method`: refused when required and missing. */
  checkFor(method, value) {
    if (!value) {
      if (this.required(method)) throw invalidRequest(`${this.field} is required for method \`${method}\``);
      return undefined;
    }
    this.check(value);
    return value;
  }

  check(value) {
    if (this.allowed !== undefined) orderNo(value, this.field, this.min, this.max, this.allowed);
    else chars(value, this.field, this.min, this.max);
  }
}

/** `payer.openid`, required for `wechat_mini_program`. */
export const MINI_PROGRAM_OPENID = Rule.text('payer.openid', 1, 128).require(['wechat_mini_program']);
/** `payer.client_ip`, required for every method. */
export const CLIENT_IP = Rule.text('payer.client_ip', 1, 64).require(['*']);

/** `rules` as `adapter-info.field-rules`. */
export const declare = (rules) =>
  rules.map((r) => ({
    field: r.field,
    minLength: r.min,
    maxLength: r.max,
    allowed: r.allowed,
    requiredFor: [...r.requiredFor],
  }));

/** One field of the configuration schema, for `describe`. */
export const config = (name, description, kind, required, defaultValue = undefined) => ({
  name,
  description,
  kind,
  required,
  default: defaultValue,
});
