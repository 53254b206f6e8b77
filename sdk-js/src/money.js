// Money on the wire: integer minor units <-> decimal strings, exactly.
//
// The contract carries `{ minor, currency }` with `minor` a u64, which the
// component bindings hand over as a BigInt; every helper here works in
// BigInt so no amount ever passes through a float.

import { FormatError } from './error.js';

const U64_MAX = (1n << 64n) - 1n;

// ISO 4217 codes by exponent (decimal places); codes absent here are refused.
const BY_EXPONENT = {
  0: 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF',
  3: 'BHD IQD JOD KWD LYD OMR TND',
  4: 'CLF UYW',
  2:
    'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD ' +
    'CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL ' +
    'GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD ' +
    'LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN ' +
    'PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL ' +
    'THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL',
};
const EXPONENTS = new Map(
  Object.entries(BY_EXPONENT).flatMap(([exp, codes]) => codes.split(' ').map((c) => [c, Number(exp)])),
);

/** What WeChat Pay takes orders in: CNY and its 16 cross-border currencies. */
export const WECHAT_PAY_CURRENCIES = Object.freeze(
  'CNY GBP HKD USD JPY CAD AUD EUR NZD KRW THB SGD RUB DKK SEK CHF NOK'.split(' '),
);

/** The ISO 4217 exponent (decimal places) of `currency`. */
export function exponent(currency) {
  const exp = EXPONENTS.get(currency);
  if (exp === undefined) throw new FormatError(`\`${currency}\` is not an ISO 4217 currency with minor units`);
  return exp;
}

/** A count of minor units as a BigInt: a BigInt, or a safe non-negative integer. */
export function minorUnits(value) {
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw new FormatError(`${value} is outside 0..2^64-1`);
    return value;
  }
  if (Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new FormatError(`${value} is not an exact count of minor units`);
}

/** `{ minor, currency }` with `minor` checked and made a BigInt. */
export const money = (minor, currency) => ({ minor: minorUnits(minor), currency });

/** Whether two amounts are the same money. */
export const same = (a, b) => a.currency === b.currency && minorUnits(a.minor) === minorUnits(b.minor);

/** 2499 EUR -> "24.99", 500 JPY -> "500", 1 BHD -> "0.001". */
export function toDecimal({ minor, currency }) {
  const exp = exponent(currency);
  const m = minorUnits(minor);
  if (exp === 0) return m.toString();
  const unit = 10n ** BigInt(exp);
  return `${m / unit}.${(m % unit).toString().padStart(exp, '0')}`;
}

/**
 * A major-unit decimal string, exactly. More decimals than the currency
 * has are refused unless they are zeros ("24.990" EUR is fine, "24.999"
 * is not); so are signs, exponents, empty parts and values past u64.
 */
export function fromDecimal(text, currency) {
  const exp = exponent(currency);
  const bad = () => new FormatError(`\`${text}\` is not a valid ${currency} amount`);
  const m = /^([0-9]+)(?:\.([0-9]+))?$/.exec(text);
  if (!m) throw bad();
  const frac = m[2] ?? '';
  if (/[^0]/.test(frac.slice(exp))) {
    throw new FormatError(`\`${text}\` has more decimals than ${currency} allows (${exp})`);
  }
  const minor = BigInt(m[1] + frac.slice(0, exp).padEnd(exp, '0'));
  if (minor > U64_MAX) throw bad();
  return { minor, currency };
}

/** An integer count of minor units as WeChat sends it ("100"). */
export function fromMinorString(text, currency) {
  if (!/^[0-9]+$/.test(text)) throw new FormatError(`\`${text}\` is not an amount in minor units`);
  const minor = BigInt(text);
  if (minor > U64_MAX) throw new FormatError(`\`${text}\` is out of range`);
  return { minor, currency };
}
