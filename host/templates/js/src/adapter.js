// A payhost adapter for Acme Pay, a fictitious provider with a simple
// signed-JSON API: the starting point `payhost adapter new` wrote. Replace
// Acme Pay's paths, fields and signature with your provider's, keeping the
// shape:
//
// - adapter.js (this file): the contract -- `describe` and the operations.
// - wire.js: the provider's messages, named as its documentation names them.
// - sign.js: its signature scheme, with the key held by the host.
// - component.js: the component's entry; nothing to change there.

import {
  AdapterError,
  CONTRACT_VERSION,
  FormatError,
  field,
  http,
  invalidRequest,
  malformed,
  money,
  rejected,
  unsupported,
} from '{{sdk}}/src/index.js';
import * as sign from './sign.js';
import * as wire from './wire.js';

/** The adapter's slot and version; test/adapter.test.js keeps them equal to package.json's. */
export const NAME = '{{name}}';
export const VERSION = '0.1.0';

/**
 * The provider's limits on request fields, declared in `describe` so the
 * host refuses a value before an order number is spent.
 */
const ORDER_NO = field.Rule.orderNo('merchant_order_no', 1, 32, '_-');
const DESCRIPTION = field.Rule.text('description', 1, 128);
const REFUND_NO = field.Rule.orderNo('refund_no', 1, 32, '_-');
const RULES = [ORDER_NO, DESCRIPTION, REFUND_NO];

export const CURRENCIES = Object.freeze(['EUR', 'GBP']);

const DEFAULT_BASE_URL = 'https://api.acme-pay.example';

/** An amount as Acme Pay writes it ("19.99"); a currency without minor units is the caller's error. */
function decimal(amount, name) {
  try {
    return money.toDecimal(amount);
  } catch (e) {
    if (e instanceof FormatError) throw invalidRequest(`${name}: ${e.message}`);
    throw e;
  }
}

/** The merchant configuration, read once per operation. */
class Settings {
  constructor(ctx) {
    const c = ctx.config;
    this.merchantId = c.text('merchant_id');
    this.apiKey = c.secret('api_key');
    this.baseUrl = c.textOpt('base_url') ?? DEFAULT_BASE_URL;
  }

  /**
   * Adds the common fields, signs, POSTs to `path` and answers the verified
   * fields of an answer whose `result` is `OK`.
   */
  call(ctx, path, fields) {
    wire.put(fields, 'merchant_id', this.merchantId);
    // Seeded by the call: a replayed step sends the same nonce.
    wire.put(fields, 'nonce', ctx.nonce(16));
    wire.put(fields, 'timestamp', String(ctx.timestamp));
    fields.set('sign', sign.sign(ctx, this.apiKey, fields));
    const response = ctx.send(http.post(http.join(this.baseUrl, path), 'application/json', wire.toBody(fields)));
    const what = `${path} answer`;
    if (response.status !== 200) {
      const retryable = response.status >= 500 || response.status === 429;
      throw rejected(`HTTP_${response.status}`, `${what}: HTTP ${response.status}`, retryable);
    }
    const answer = wire.answerFields(response.body, what);
    // Error answers are signed too: nothing unsigned is believed.
    sign.verify(ctx, this.apiKey, answer, what);
    if (wire.required(answer, 'merchant_id', what) !== this.merchantId) {
      throw malformed(`${what} is for another merchant_id`);
    }
    const result = wire.required(answer, 'result', what);
    if (result !== wire.RESULT_OK) {
      const code = wire.optional(answer, 'error_code') ?? result;
      const message = wire.optional(answer, 'error_message') ?? '';
      throw rejected(code, `${what}: ${message}`, code === wire.SYSTEM_BUSY);
    }
    return answer;
  }
}

/** Query and close: the order number in, the order's status out. */
function orderCall(ctx, path, order) {
  const s = new Settings(ctx);
  ORDER_NO.check(order.merchantOrderNo);
  const fields = new Map();
  wire.put(fields, 'out_trade_no', order.merchantOrderNo);
  const answer = s.call(ctx, path, fields);
  return tradeStatus(answer, order, `${path} answer`);
}

/** The order an answer is about; it must be the one asked about. */
function orderRef(fields, merchantOrderNo, known, what) {
  const echoed = wire.required(fields, 'out_trade_no', what);
  if (echoed !== merchantOrderNo) {
    throw malformed(`${what} is for out_trade_no \`${echoed}\`, not \`${merchantOrderNo}\``);
  }
  return {
    merchantOrderNo,
    providerTradeNo: wire.optional(fields, 'trade_no') ?? known?.providerTradeNo,
    channelTransactionId: known?.channelTransactionId,
  };
}

/** `name` and `currency` of a message as money in minor units. */
function amount(fields, name, what) {
  const text = wire.required(fields, name, what);
  const currency = wire.required(fields, 'currency', what);
  try {
    return money.fromDecimal(text, currency);
  } catch (e) {
    if (e instanceof FormatError) throw malformed(`${what}: \`${name}\`: ${e.message}`);
    throw e;
  }
}

/** Unix seconds as the contract's s64, or undefined. */
function unixTime(fields, name, what) {
  const text = wire.optional(fields, name);
  if (text === undefined) return undefined;
  const t = /^-?[0-9]{1,19}$/.test(text) ? BigInt(text) : undefined;
  if (t === undefined || BigInt.asIntN(64, t) !== t) throw malformed(`${what}: \`${name}\` is not a unix time`);
  return t;
}

/** An order's status in an answer or a payment notification. */
function tradeStatus(fields, order, what) {
  const word = wire.required(fields, 'status', what);
  const state = wire.tradeState(word);
  if (state === undefined) throw malformed(`${what}: unknown status \`${word}\``);
  const paidAt = unixTime(fields, 'paid_at', what);
  return {
    order: orderRef(fields, order.merchantOrderNo, order, what),
    state,
    providerState: word,
    amount: amount(fields, 'amount', what),
    paidAt,
    payerId: undefined,
  };
}

/** A refund's status in an answer or a refund notification. */
function refundStatus(fields, order, refundNo, what) {
  const echoed = wire.required(fields, 'out_refund_no', what);
  if (echoed !== refundNo) throw malformed(`${what} is for out_refund_no \`${echoed}\`, not \`${refundNo}\``);
  const word = wire.required(fields, 'refund_status', what);
  const state = wire.refundState(word);
  if (state === undefined) throw malformed(`${what}: unknown refund_status \`${word}\``);
  return {
    order: orderRef(fields, order.merchantOrderNo, order, what),
    refundNo,
    providerRefundId: wire.optional(fields, 'refund_id'),
    state,
    providerState: word,
    amount: amount(fields, 'refund_amount', what),
  };
}

/** A signed form notification of a payment or a refund. */
function notification(ctx, s, body) {
  const what = 'notification';
  const fields = wire.notificationFields(body);
  sign.verify(ctx, s.apiKey, fields, what);
  if (wire.required(fields, 'merchant_id', what) !== s.merchantId) {
    throw invalidRequest(`${what} is for another merchant_id`);
  }
  const order = {
    merchantOrderNo: wire.required(fields, 'out_trade_no', what),
    providerTradeNo: undefined,
    channelTransactionId: undefined,
  };
  const event = wire.required(fields, 'event', what);
  if (event === wire.PAYMENT_EVENT) return { tag: 'payment', val: tradeStatus(fields, order, what) };
  if (event === wire.REFUND_EVENT) {
    const refundNo = wire.required(fields, 'out_refund_no', what);
    return { tag: 'refund', val: refundStatus(fields, order, refundNo, what) };
  }
  throw invalidRequest(`${what}: unknown event \`${event}\``);
}

const cfg = field.config;

export const AcmePay = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      contractVersion: CONTRACT_VERSION,
      methods: [...wire.METHODS],
      currencies: [...CURRENCIES],
      capabilities: {
        paymentNotifications: true,
        refundNotifications: true,
        partialRefunds: true,
        queryByMerchantOrderNo: true,
        close: true,
        refundQuery: true,
      },
      egressHosts: ['api.acme-pay.example'],
      fieldRules: field.declare(RULES),
      configSchema: [
        cfg('merchant_id', 'Acme Pay merchant id', 'text', true),
        // Secret: the adapter only ever gets a handle to it.
        cfg('api_key', 'The API key requests and answers are signed with', 'secret', true),
        cfg('base_url', 'Acme Pay API origin', 'url', false, DEFAULT_BASE_URL),
      ],
    };
  },

  unifiedOrder(ctx, req) {
    const s = new Settings(ctx);
    if (req.method !== wire.QR_CODE) {
      throw unsupported(`method \`${req.method}\`: acme pay offers ${wire.METHODS.join(', ')}`);
    }
    ORDER_NO.check(req.merchantOrderNo);
    DESCRIPTION.check(req.description);
    field.positive(req.amount.minor, 'amount.minor');
    if (!CURRENCIES.includes(req.amount.currency)) {
      throw invalidRequest(`amount.currency \`${req.amount.currency}\`: acme pay takes ${CURRENCIES.join(', ')}`);
    }
    const expiresAt = field.expiry(req.expiresAt, ctx.timestamp);
    const fields = new Map();
    wire.put(fields, 'out_trade_no', req.merchantOrderNo);
    wire.put(fields, 'amount', decimal(req.amount, 'amount'));
    wire.put(fields, 'currency', req.amount.currency);
    wire.put(fields, 'description', req.description);
    wire.put(fields, 'notify_url', ctx.notifyUrl);
    wire.put(fields, 'attach', req.attach ?? '');
    if (expiresAt !== undefined) wire.put(fields, 'expire_time', String(expiresAt));
    const answer = s.call(ctx, wire.CREATE_ORDER, fields);
    const what = 'create order answer';
    return {
      order: orderRef(answer, req.merchantOrderNo, undefined, what),
      action: { tag: 'qr-code', val: wire.required(answer, 'qr_code', what) },
    };
  },

  query(ctx, req) {
    return orderCall(ctx, wire.QUERY_ORDER, req.order);
  },

  close(ctx, req) {
    // Acme Pay answers the order's status: `CLOSED`, or `PAID` when the payer was quicker.
    return orderCall(ctx, wire.CLOSE_ORDER, req.order);
  },

  refund(ctx, req) {
    const s = new Settings(ctx);
    REFUND_NO.check(req.refundNo);
    field.refundAmount(req.amount, req.orderAmount);
    const fields = new Map();
    wire.put(fields, 'out_trade_no', req.order.merchantOrderNo);
    wire.put(fields, 'out_refund_no', req.refundNo);
    wire.put(fields, 'refund_amount', decimal(req.amount, 'amount'));
    wire.put(fields, 'currency', req.amount.currency);
    wire.put(fields, 'notify_url', ctx.notifyUrl);
    const answer = s.call(ctx, wire.CREATE_REFUND, fields);
    return refundStatus(answer, req.order, req.refundNo, 'create refund answer');
  },

  refundQuery(ctx, req) {
    const s = new Settings(ctx);
    REFUND_NO.check(req.refundNo);
    const fields = new Map();
    wire.put(fields, 'out_trade_no', req.order.merchantOrderNo);
    wire.put(fields, 'out_refund_no', req.refundNo);
    const answer = s.call(ctx, wire.QUERY_REFUND, fields);
    return refundStatus(answer, req.order, req.refundNo, 'query refund answer');
  },

  parseNotify(ctx, req) {
    // Acme Pay retries a notification until it reads `OK`; a refused one gets `400 FAIL`.
    try {
      const s = new Settings(ctx);
      if (req.method !== 'post') throw invalidRequest('notification must be a POST');
      return { events: [notification(ctx, s, req.body)], ack: http.response(200, 'text/plain', 'OK') };
    } catch (e) {
      if (e instanceof AdapterError) throw e.withAck(http.response(400, 'text/plain', 'FAIL'));
      throw e;
    }
  },
};
