// 2paynow's messages (providers.md §6.1, §6.2, §6.4), named as the
// provider names them: one web endpoint whose `function` parameter selects
// the call, parameters in the query string of a GET, JSON answers.

import { FormatError, form, invalidRequest, json, malformed, money } from '../../../sdk-js/src/index.js';

/** The web endpoint's path on `base_url`. */
export const API_PATH = '/zhifu/mc_itf';

/** The `function` values (§6.1). */
export const PRECREATE = 'precreate';
export const WAP_PRECREATE = 'wap_precreate';
export const QUERY = 'query';
export const WAP_QUERY = 'wap_query';
export const CANCEL = 'cancel';

/** The key payhost puts into `passback_parameters`: a web order's notification names no `merchant_trade_no`. */
export const PASSBACK_ORDER_KEY = 'merchant_order_no';

/** A JSON answer of the web endpoint. */
export class Answer {
  constructor(fn, body) {
    this.function = fn;
    this.body = body;
  }

  static parse(fn, bytes) {
    let body;
    try {
      body = json.fromBody(bytes);
    } catch (e) {
      throw malformed(`${fn} answer: ${e.message}`);
    }
    if (!json.isObject(body)) throw malformed(`${fn} answer is not a JSON object`);
    return new Answer(fn, body);
  }

  /** A field as text: 2paynow writes numbers (`status`, `amount`) either way. */
  text(name) {
    if (!Object.hasOwn(this.body, name)) return undefined;
    const v = this.body[name];
    if (typeof v === 'string') return v === '' ? undefined : v;
    if (typeof v === 'number') {
      try {
        return json.numberText(v);
      } catch (e) {
        throw malformed(`${this.function} answer: \`${name}\`: ${e.message}`);
      }
    }
    return undefined;
  }

  required(name) {
    const v = this.text(name);
    if (v === undefined) throw malformed(`${this.function} answer lacks \`${name}\``);
    return v;
  }

  /** `status`: 200 is success (§6.2); other values read like HTTP codes. */
  status() {
    const s = this.required('status');
    if (!/^[0-9]{1,5}$/.test(s) || Number(s) > 65535) throw malformed(`${this.function} answer: \`status\` is \`${s}\``);
    return Number(s);
  }

  /** The amount an answer reports, when it names both amount and currency. */
  money() {
    const a = this.text('amount');
    const c = this.text('currency');
    if (a === undefined || c === undefined) return undefined;
    try {
      return money.fromDecimal(a, c);
    } catch (e) {
      throw malformed(`${this.function} answer: amount: ${e.message}`);
    }
  }
}

/** `trans_status`, conservatively: only TRADE_SUCCESS is paid; UNKNOWN and unknown words are pending. */
export function tradeState(transStatus) {
  switch (transStatus) {
    case 'TRADE_SUCCESS':
      return 'paid';
    case 'TRADE_CLOSED':
      return 'closed';
    case 'TRADE_FAILED':
      return 'failed';
    default:
      return 'pending';
  }
}

/** Whether a rejection with this `status` may pass if repeated. */
export const retryable = (status) => status >= 500 || status === 429;

/** `it_b_pay` for an order that expires `seconds` from now: whole minutes, rounded up. */
export const itBPay = (seconds) => `${Math.floor((Math.max(seconds, 1) + 59) / 60)}m`;

/** A notification's parameters (§6.4), each name once. */
export class Params {
  constructor(pairs) {
    this.pairs = pairs;
  }

  /** Reads `query` (or, when it is empty, a form body); a name given twice is refused. */
  static parse(query, body) {
    const pairs = query === '' ? form.decode(body) : form.decode(query);
    const seen = new Set();
    for (const [k] of pairs) {
      if (seen.has(k)) throw invalidRequest(`notification names \`${k}\` twice`);
      seen.add(k);
    }
    return new Params(pairs);
  }

  get(name) {
    const found = this.pairs.find(([k]) => k === name);
    return found && found[1] !== '' ? found[1] : undefined;
  }

  required(name) {
    const v = this.get(name);
    if (v === undefined) throw invalidRequest(`notification lacks \`${name}\``);
    return v;
  }

  /** `merchant_trade_no` (WAP orders), else the number payhost put into `passback_parameters`. */
  merchantOrderNo() {
    const direct = this.get('merchant_trade_no');
    if (direct !== undefined) return direct;
    const passback = this.get('passback_parameters');
    if (passback === undefined) return undefined;
    let parsed;
    try {
      parsed = json.fromBody(passback);
    } catch (e) {
      if (e instanceof FormatError) return undefined;
      throw e;
    }
    const no = json.isObject(parsed) ? parsed[PASSBACK_ORDER_KEY] : undefined;
    return typeof no === 'string' && no !== '' ? no : undefined;
  }
}
