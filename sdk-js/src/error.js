// Errors an operation ends with: the contract's `adapter-error` cases, and
// the suspension that ends a step to have the host perform a request.

/** The contract's error kinds (`adapter-error` variant cases). */
export const KINDS = Object.freeze([
  'invalid-config',
  'invalid-request',
  'unsupported',
  'provider-rejected',
  'malformed-response',
  'bad-signature',
  'nondeterministic',
]);

/**
 * An error the contract can carry. Messages name the field or value at
 * fault and never hold secret material.
 */
export class AdapterError extends Error {
  constructor(kind, message, { code, retryable = false, ack } = {}) {
    super(message);
    if (!KINDS.includes(kind)) throw new TypeError(`unknown adapter error kind \`${kind}\``);
    this.name = 'AdapterError';
    this.kind = kind;
    this.code = code;
    this.retryable = retryable;
    /** For notifications: the answer the provider expects anyway. */
    this.ack = ack;
  }

  /** The same error carrying the answer a refused notification gets. */
  withAck(ack) {
    const e = new AdapterError(this.kind, this.message, { code: this.code, retryable: this.retryable, ack });
    return e;
  }

  /** As the WIT `adapter-error` variant. */
  toContract() {
    if (this.kind === 'provider-rejected') {
      return { tag: this.kind, val: { code: this.code, message: this.message, retryable: this.retryable } };
    }
    return { tag: this.kind, val: this.message };
  }
}

export const invalidConfig = (m) => new AdapterError('invalid-config', m);
export const invalidRequest = (m) => new AdapterError('invalid-request', m);
export const unsupported = (m) => new AdapterError('unsupported', m);
export const malformed = (m) => new AdapterError('malformed-response', m);
export const badSignature = (m) => new AdapterError('bad-signature', m);
export const nondeterministic = (m) => new AdapterError('nondeterministic', m);
export const rejected = (code, message, retryable) =>
  new AdapterError('provider-rejected', message, { code, retryable });

/** Whether `e` is a provider refusal that repeating would not change. */
export const isFinalRefusal = (e) => e instanceof AdapterError && e.kind === 'provider-rejected' && !e.retryable;

/**
 * Thrown by `ctx.send` when the request is not yet performed: the step
 * ends and the host performs `request`. Never catch it in adapter code
 * without rethrowing (`rethrowSuspend` helps).
 */
export class Suspend {
  constructor(request) {
    this.request = request;
  }
}

/** Rethrows a suspension; for `catch` blocks that handle adapter errors. */
export function rethrowSuspend(e) {
  if (!(e instanceof AdapterError)) throw e;
}

/** A parse failure of a helper (JSON, XML, money), before it gets a kind. */
export class FormatError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FormatError';
  }
}
