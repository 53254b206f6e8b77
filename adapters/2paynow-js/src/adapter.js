// 2paynow (Europe Sepay B.V.) adapter in JavaScript, providers.md §6: the
// twin of adapters/2paynow (Rust), same behaviour and the same
// configuration, so a merchant moves between the slots unchanged.
//
// - adapter.js (this file): the contract -- `describe` and the operations.
// - wire.js: 2paynow's functions, parameters and answers.
// - sign.js: its signature, MD5 over function, mid, timestamp and key.
//
// What 2paynow signs covers neither amount, order nor status (§6.3), so
// no notification is believed on its own: `parseNotify` asks 2paynow and
// reports only what that answer says. Refunds and the mini-program call
// are not publicly documented (§6.6): `refund` and `refundQuery` answer
// `unsupported`.

import {
  AdapterError,
  CONTRACT_VERSION,
  badSignature,
  field,
  form,
  http,
  invalidConfig,
  invalidRequest,
  isFinalRefusal,
  money,
  rejected,
  unsupported,
} from '../../../sdk-js/src/index.js';
import * as sign from './sign.js';
import * as wire from './wire.js';

export const NAME = '2paynow-js';
/** The adapter's own version; test/adapter.test.js keeps it equal to package.json's. */
export const VERSION = '0.1.0';
const DEFAULT_BASE_URL = 'https://www.2paynow.com';
const DEFAULT_WAP_WECHAT_URL = 'http://www.2paynow.com/wap/WxpayAPI/jsapi.php';
const DEFAULT_WAP_ALIPAY_URL = 'http://2paynow.com/wap/wappay/pay.html';

const WECHAT_NATIVE = 'wechat_native';
const ALIPAY_NATIVE = 'alipay_native';
const WECHAT_WAP = 'wechat_wap';
const ALIPAY_WAP = 'alipay_wap';
const METHODS = [WECHAT_NATIVE, ALIPAY_NATIVE, WECHAT_WAP, ALIPAY_WAP];
/** Which channel and flow each method is. */
const CHANNELS = {
  [WECHAT_NATIVE]: { channel: 'wechat', wap: false },
  [ALIPAY_NATIVE]: { channel: 'alipay', wap: false },
  [WECHAT_WAP]: { channel: 'wechat', wap: true },
  [ALIPAY_WAP]: { channel: 'alipay', wap: true },
};

/** EUR is the driver's currency (§6.2, §6.5); the source article orders in CNY too. */
export const CURRENCIES = ['EUR', 'CNY'];

const NO_REFUNDS =
  '2paynow has no publicly documented refund call (providers.md §6.6: the call, its currency and its notification are UNKNOWN; the source article omits `refund_2paynow`); refund in the 2paynow merchant portal';

/** The merchant numbers 2paynow is sent: letters, digits, `_` and `-`. */
const orderNo = (value, name) => field.orderNo(value, name, 1, 64, '_-');

/** The merchant configuration, read once per operation. */
class Settings {
  constructor(ctx) {
    const c = ctx.config;
    this.mid = c.text('mid');
    if (!/^[0-9]*$/.test(this.mid)) {
      throw invalidConfig(`field \`mid\` is \`${this.mid}\`; 2paynow merchant ids are numeric`);
    }
    this.timestampUnit = c.oneOf('timestamp_unit', sign.TIMESTAMP_UNITS, 'milliseconds');
    this.verifyAnswers = c.oneOf('verify_answer_sign', ['true', 'false'], 'false') === 'true';
    this.key = c.secret('key');
    this.baseUrl = c.textOpt('base_url') ?? DEFAULT_BASE_URL;
    this.types = { wechat: c.textOpt('wechat_type') ?? '1', alipay: c.textOpt('alipay_type') ?? '0' };
    this.itBPay = c.textOpt('it_b_pay') ?? '30m';
    this.wapPages = {
      wechat: c.textOpt('wap_wechat_url') ?? DEFAULT_WAP_WECHAT_URL,
      alipay: c.textOpt('wap_alipay_url') ?? DEFAULT_WAP_ALIPAY_URL,
    };
    this.returnUrl = c.textOpt('return_url');
  }

  /** `function`, `mid`, `timestamp` and `sign` followed by `params`, as a query string. */
  signedQuery(ctx, fn, params) {
    const timestamp = sign.stamp(this.timestampUnit, ctx.timestamp);
    const s = sign.sign(ctx, fn, this.mid, timestamp, this.key);
    return form.encode([['function', fn], ['mid', this.mid], ['timestamp', timestamp], ['sign', s], ...params]);
  }

  /** Calls `fn` on the web endpoint; its answer when 2paynow's `status` says 200. */
  call(ctx, fn, params) {
    const url = `${http.join(this.baseUrl, wire.API_PATH)}?${this.signedQuery(ctx, fn, params)}`;
    const response = ctx.send(http.get(url));
    if (response.status !== 200) {
      throw rejected(`HTTP_${response.status}`, `2paynow ${fn} answered HTTP ${response.status}`, wire.retryable(response.status));
    }
    const answer = wire.Answer.parse(fn, response.body);
    const status = answer.status();
    if (status !== 200) {
      // Refusals carry `error_info` and, in the driver, no signature.
      const info = answer.text('error_info') ?? '';
      throw rejected(`STATUS_${status}`, `2paynow ${fn}: status ${status} \`${info}\``, wire.retryable(status));
    }
    if (this.verifyAnswers) {
      const what = `${fn} answer`;
      const f = answer.required('function');
      const ts = answer.required('timestamp');
      const received = answer.text('sign');
      if (received === undefined) throw badSignature(`${what} carries no \`sign\``);
      sign.verify(ctx, f, this.mid, ts, this.key, received, what);
    }
    return answer;
  }

  /**
   * The order's state at 2paynow: by `query` with a known trade_no (how
   * web orders are found); without one, or when `query` refuses it for
   * good, by `wap_query` with the merchant order no.
   */
  orderStatus(ctx, order) {
    const tradeNo = order.providerTradeNo || undefined;
    let answer;
    if (tradeNo === undefined) {
      answer = this.wapQuery(ctx, order.merchantOrderNo);
    } else {
      try {
        answer = this.call(ctx, wire.QUERY, [['trade_no', tradeNo]]);
      } catch (e) {
        if (!isFinalRefusal(e) || order.merchantOrderNo === '') throw e;
        // The first refusal is the one worth reporting; a suspension
        // (the request still to send) must pass through.
        try {
          answer = this.wapQuery(ctx, order.merchantOrderNo);
        } catch (w) {
          throw w instanceof AdapterError ? e : w;
        }
      }
    }
    const reported = answer.text('trade_no');
    if (tradeNo !== undefined && reported !== undefined && tradeNo !== reported) {
      throw new AdapterError('malformed-response', `${answer.function} answer is for trade_no \`${reported}\`, not \`${tradeNo}\``);
    }
    const word = answer.required('trans_status');
    return {
      order: {
        merchantOrderNo: order.merchantOrderNo,
        providerTradeNo: reported ?? order.providerTradeNo,
        channelTransactionId: answer.text('original_trade_no') ?? order.channelTransactionId,
      },
      state: wire.tradeState(word),
      providerState: word,
      amount: answer.money(),
      paidAt: undefined,
      payerId: undefined,
    };
  }

  wapQuery(ctx, merchantOrderNo) {
    orderNo(merchantOrderNo, 'order.merchant_order_no');
    return this.call(ctx, wire.WAP_QUERY, [['merchant_trade_no', merchantOrderNo]]);
  }
}

const cfg = field.config;

export const TwoPayNow = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      contractVersion: CONTRACT_VERSION,
      // No `wechat_mini_program`: the JSAPI call is not public (§6.6).
      methods: [...METHODS],
      currencies: [...CURRENCIES],
      capabilities: {
        paymentNotifications: true,
        refundNotifications: false,
        partialRefunds: false,
        // Web orders are found by 2paynow's trade_no only.
        queryByMerchantOrderNo: false,
        close: true,
        refundQuery: false,
      },
      egressHosts: ['www.2paynow.com'],
      fieldRules: [],
      configSchema: [
        cfg('mid', '2paynow merchant id (numeric)', 'text', true),
        cfg('key', 'The key 2paynow issued with the merchant id', 'secret', true),
        cfg('base_url', 'Web endpoint host; the adapter calls {base_url}/zhifu/mc_itf', 'url', false, DEFAULT_BASE_URL),
        cfg('timestamp_unit', '`milliseconds` (the public driver) or `seconds`', 'text', false, 'milliseconds'),
        cfg('wechat_type', '`type` value that selects WeChat Pay', 'text', false, '1'),
        cfg('alipay_type', '`type` value that selects Alipay', 'text', false, '0'),
        cfg('it_b_pay', 'Payment time-out sent when an order has no expiry', 'text', false, '30m'),
        cfg('wap_wechat_url', 'Page the payer opens for wechat_wap (http or https as 2paynow accepts)', 'text', false, DEFAULT_WAP_WECHAT_URL),
        cfg('wap_alipay_url', 'Page the payer opens for alipay_wap (http or https as 2paynow accepts)', 'text', false, DEFAULT_WAP_ALIPAY_URL),
        cfg('return_url', 'Where 2paynow sends the payer back after a WAP payment (required for the WAP methods)', 'text', false),
        cfg('verify_answer_sign', '`true` to check answers\' `sign` with the request formula (unconfirmed that 2paynow signs them so)', 'text', false, 'false'),
      ],
    };
  },

  unifiedOrder(ctx, req) {
    const s = new Settings(ctx);
    const kind = Object.hasOwn(CHANNELS, req.method) ? CHANNELS[req.method] : undefined;
    if (kind === undefined) {
      throw unsupported(`method \`${req.method}\`: 2paynow offers ${METHODS.join(', ')} (its mini-program call is not publicly documented)`);
    }
    orderNo(req.merchantOrderNo, 'merchant_order_no');
    field.chars(req.description, 'description', 1, 128);
    field.positive(req.amount.minor, 'amount.minor');
    if (!CURRENCIES.includes(req.amount.currency)) {
      throw invalidRequest(`amount.currency \`${req.amount.currency}\`: 2paynow takes ${CURRENCIES.join(', ')}`);
    }
    let amount;
    try {
      amount = money.toDecimal(req.amount);
    } catch (e) {
      throw invalidRequest(`amount: ${e.message}`);
    }
    const expiresAt = field.expiry(req.expiresAt, ctx.timestamp);
    const itBPay = expiresAt === undefined ? s.itBPay : wire.itBPay(expiresAt - ctx.timestamp);
    const passback = JSON.stringify({ [wire.PASSBACK_ORDER_KEY]: req.merchantOrderNo });
    const params = [
      ['type', s.types[kind.channel]],
      ['subject', req.description],
      ['amount', amount],
      ['currency', req.amount.currency],
      ['notify_url', ctx.notifyUrl],
    ];
    // §6.2: WAP WeChat takes no time-out.
    if (!(kind.wap && kind.channel === 'wechat')) params.push(['it_b_pay', itBPay]);
    params.push(['passback_parameters', passback]);

    if (kind.wap) {
      if (s.returnUrl === undefined) throw invalidConfig(`field \`return_url\` is required for ${WECHAT_WAP} and ${ALIPAY_WAP}`);
      params.push(['merchant_trade_no', req.merchantOrderNo], ['return_url', s.returnUrl]);
      // The payer's browser opens the page; nothing is sent from here, and
      // 2paynow's trade_no arrives with the notification.
      const query = s.signedQuery(ctx, wire.WAP_PRECREATE, params);
      return {
        order: { merchantOrderNo: req.merchantOrderNo, providerTradeNo: undefined, channelTransactionId: undefined },
        action: { tag: 'redirect', val: `${s.wapPages[kind.channel]}?${query}` },
      };
    }
    const answer = s.call(ctx, wire.PRECREATE, params);
    return {
      order: { merchantOrderNo: req.merchantOrderNo, providerTradeNo: answer.required('trade_no'), channelTransactionId: undefined },
      action: { tag: 'qr-code', val: answer.required('qr_code') },
    };
  },

  query(ctx, req) {
    return new Settings(ctx).orderStatus(ctx, req.order);
  },

  /**
   * `cancel` by trade_no (found with `wap_query` for a WAP order without
   * one). When 2paynow refuses, the order is queried: paid or closed is
   * answered as such, anything else keeps the refusal.
   */
  close(ctx, req) {
    const s = new Settings(ctx);
    const tradeNo = req.order.providerTradeNo || s.wapQuery(ctx, req.order.merchantOrderNo).required('trade_no');
    const order = { ...req.order, providerTradeNo: tradeNo };
    try {
      s.call(ctx, wire.CANCEL, [['trade_no', tradeNo]]);
    } catch (e) {
      if (!isFinalRefusal(e)) throw e;
      const status = s.orderStatus(ctx, order);
      if (status.state === 'paid' || status.state === 'closed') return status;
      throw e;
    }
    return { order, state: 'closed', providerState: 'TRADE_CLOSED', amount: undefined, paidAt: undefined, payerId: undefined };
  },

  refund() {
    throw unsupported(NO_REFUNDS);
  },

  refundQuery() {
    throw unsupported(NO_REFUNDS);
  },

  /**
   * §6.4: parameters in the query string (GET or POST; a form body when
   * the query string is empty), `sign` over function, mid and timestamp.
   * Then the order is asked at 2paynow and only that answer is reported.
   */
  parseNotify(ctx, req) {
    const s = new Settings(ctx);
    if (req.method !== 'get' && req.method !== 'post') throw invalidRequest('notification must be a GET or POST');
    const what = 'notification';
    const params = wire.Params.parse(req.query, req.body);
    const received = params.get('sign');
    if (received === undefined) throw badSignature(`${what} carries no \`sign\``);
    const mid = params.required('mid');
    if (mid !== s.mid) throw badSignature(`${what} is for mid \`${mid}\`, not the configured one`);
    sign.verify(ctx, params.required('function'), mid, params.required('timestamp'), s.key, received, what);
    const ack = http.response(200, 'text/plain', 'success');
    // The source article answers `success` to a notification naming no order, and applies nothing.
    const merchantOrderNo = params.merchantOrderNo();
    if (merchantOrderNo === undefined) return { events: [], ack };
    orderNo(merchantOrderNo, 'merchant_trade_no');
    const notifiedTradeNo = params.get('trade_no');
    const wap = params.get('merchant_trade_no') !== undefined;
    if (!wap && notifiedTradeNo === undefined) throw invalidRequest(`${what} for a web order lacks \`trade_no\``);
    // A WAP order is asked by the merchant number payhost chose; a web
    // order by the trade_no, which the host checks against the stored one.
    const status = s.orderStatus(ctx, {
      merchantOrderNo,
      providerTradeNo: wap ? undefined : notifiedTradeNo,
      channelTransactionId: undefined,
    });
    const found = status.order.providerTradeNo;
    if (notifiedTradeNo !== undefined && found !== undefined && notifiedTradeNo !== found) {
      throw invalidRequest(`${what} names trade_no \`${notifiedTradeNo}\`; 2paynow has \`${found}\` for order \`${merchantOrderNo}\``);
    }
    const amount = params.get('amount');
    const currency = params.get('currency');
    if (amount !== undefined && currency !== undefined) {
      let told;
      try {
        told = money.fromDecimal(amount, currency);
      } catch (e) {
        throw invalidRequest(`${what}: amount: ${e.message}`);
      }
      if (status.amount !== undefined && !money.same(status.amount, told)) {
        throw invalidRequest(
          `${what} says ${amount} ${currency}; 2paynow's query says ${money.toDecimal(status.amount)} ${status.amount.currency}`,
        );
      }
    }
    // §6.4: `original_trade_no` is unsigned, so it is taken only for a payment 2paynow confirmed.
    if (status.order.channelTransactionId === undefined && status.state === 'paid') {
      status.order.channelTransactionId = params.get('original_trade_no');
    }
    return { events: [{ tag: 'payment', val: status }], ack };
  },
};
