// `Ctx`: what one step of one operation may use. Everything that could
// differ between two runs of a step -- the time, random values, the
// provider's answers -- comes from here, so a replayed step takes the same
// path and asks for the same requests.

import { Suspend, invalidConfig, nondeterministic } from './error.js';
import { sameRequest } from './http.js';
import { Secret, SecretOps } from './secrets.js';

const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const MASK64 = (1n << 64n) - 1n;

/** The merchant's configuration, as the host validated it against the schema. */
export class Config {
  constructor(entries) {
    this.entries = entries;
  }

  #find(name) {
    const e = this.entries.find((x) => x.name === name);
    return e && e.value;
  }

  /** A required plain (or URL) field. */
  text(name) {
    const v = this.textOpt(name);
    if (v === undefined) throw invalidConfig(`missing field \`${name}\``);
    return v;
  }

  /** An optional plain field; empty text counts as absent. */
  textOpt(name) {
    const v = this.#find(name);
    if (v === undefined) return undefined;
    if (v.tag === 'secret') throw invalidConfig(`field \`${name}\` is a secret where plain text was expected`);
    return v.val === '' ? undefined : v.val;
  }

  /** A required secret field, as a `Secret` for the secret operations. */
  secret(name) {
    const s = this.secretOpt(name);
    if (s === undefined) throw invalidConfig(`missing secret field \`${name}\``);
    return s;
  }

  secretOpt(name) {
    const v = this.#find(name);
    if (v === undefined) return undefined;
    if (v.tag !== 'secret') throw invalidConfig(`field \`${name}\` must be configured as a secret`);
    return new Secret(v.val);
  }

  /** An optional field that must be one of `allowed`, else `fallback`. */
  oneOf(name, allowed, fallback) {
    const v = this.textOpt(name) ?? fallback;
    if (!allowed.includes(v)) {
      throw invalidConfig(`field \`${name}\` is \`${v}\`, expected ${allowed.map((a) => `\`${a}\``).join(' or ')}`);
    }
    return v;
  }
}

export class Ctx {
  constructor(host, call, config, exchanges) {
    this.host = host;
    this.call = call;
    this.config = new Config(config);
    this.exchanges = exchanges;
    this.replayed = 0;
    this.secrets = new SecretOps(host);
    // splitmix64 over the call's seed: the n-th nonce is the same in every replay.
    this.rng = BigInt.asUintN(64, BigInt(call.seed));
  }

  /**
   * The answer to `request`: the recorded one when this step replays it;
   * otherwise the step ends here (a `Suspend` is thrown, which the glue
   * turns into `send`) and the host performs it. A request that differs
   * from the one recorded at this position is `nondeterministic`.
   */
  send(request) {
    const recorded = this.exchanges[this.replayed];
    if (recorded === undefined) throw new Suspend(request);
    if (!sameRequest(recorded.request, request)) {
      const same = recorded.request.url === request.url ? ', different headers or body' : '';
      throw nondeterministic(
        `request #${this.replayed + 1} differs from the recorded one (${recorded.request.method} ${recorded.request.url} then, ${request.method} ${request.url} now${same})`,
      );
    }
    this.replayed += 1;
    return recorded.response;
  }

  /** How many recorded exchanges this step has not asked for again. */
  get unreplayed() {
    return this.exchanges.length - this.replayed;
  }

  /** Unix seconds at which the operation started (a Number). */
  get timestamp() {
    return Number(this.call.timestamp);
  }

  get notifyUrl() {
    return this.call.notifyUrl;
  }

  get requestId() {
    return this.call.requestId;
  }

  #next() {
    this.rng = (this.rng + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.rng;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  /** A random alphanumeric string of `len` characters, derived from the operation's seed. */
  nonce(len) {
    let out = '';
    for (let i = 0; i < len; i++) out += NONCE_ALPHABET[Number(this.#next() % BigInt(NONCE_ALPHABET.length))];
    return out;
  }

  /** `level`: 'trace', 'debug', 'info', 'warn' or 'error'. */
  log(level, message) {
    this.host.log(level, message);
  }

  digest(alg, parts) {
    return this.secrets.digest(alg, parts);
  }

  hmac(alg, key, encoding, message) {
    return this.secrets.hmac(alg, key, encoding, message);
  }

  rsaSha256Sign(key, message) {
    return this.secrets.rsaSha256Sign(key, message);
  }

  rsaSha256Verify(publicKeyPem, message, signature) {
    return this.secrets.rsaSha256Verify(publicKeyPem, message, signature);
  }

  aes256GcmDecrypt(key, nonce, associatedData, ciphertext) {
    return this.secrets.aes256GcmDecrypt(key, nonce, associatedData, ciphertext);
  }

  aes256EcbDecryptMd5Key(key, ciphertext) {
    return this.secrets.aes256EcbDecryptMd5Key(key, ciphertext);
  }
}
