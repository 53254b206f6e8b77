//! Per-merchant limits (issue 4 §6): amount caps per payment and per payer
//! per day, and call rates per merchant and operation.
//!
//! The amount defaults come from WeChat Pay's published caps, which are in
//! CNY and depend on the merchant's industry class. A merchant in another
//! currency either gives a rate (`cny_rate`, units of its currency per 1 CNY)
//! to convert them, or configures its caps directly in minor units.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

/// Physical goods: 80,000.00 CNY per payment and per payer per day.
pub const PHYSICAL_PER_PAYMENT_CNY_MINOR: u64 = 8_000_000;
pub const PHYSICAL_PER_PAYER_DAY_CNY_MINOR: u64 = 8_000_000;
/// Virtual goods: 6,000.00 CNY per payment, 9,000.00 per payer per day.
pub const VIRTUAL_PER_PAYMENT_CNY_MINOR: u64 = 600_000;
pub const VIRTUAL_PER_PAYER_DAY_CNY_MINOR: u64 = 900_000;

pub const DEFAULT_CREATE_PER_MIN: u32 = 100;
pub const DEFAULT_QUERY_PER_MIN: u32 = 300;
pub const DEFAULT_REFUND_PER_MIN: u32 = 50;

/// The merchant's industry class, which picks the default amount caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Industry {
    Physical,
    Virtual,
}

impl Industry {
    /// (per payment, per payer per day) in CNY minor units (fen).
    pub fn default_caps_cny_minor(self) -> (u64, u64) {
        match self {
            Industry::Physical => (
                PHYSICAL_PER_PAYMENT_CNY_MINOR,
                PHYSICAL_PER_PAYER_DAY_CNY_MINOR,
            ),
            Industry::Virtual => (
                VIRTUAL_PER_PAYMENT_CNY_MINOR,
                VIRTUAL_PER_PAYER_DAY_CNY_MINOR,
            ),
        }
    }
}

impl std::fmt::Display for Industry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Industry::Physical => "physical",
            Industry::Virtual => "virtual",
        })
    }
}

/// `[merchants.limits]` as written; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub per_payment_minor: Option<u64>,
    pub per_payer_day_minor: Option<u64>,
    pub create_per_min: Option<u32>,
    pub query_per_min: Option<u32>,
    pub refund_per_min: Option<u32>,
    /// Units of the merchant currency per 1 CNY, as exact decimal text.
    #[serde(deserialize_with = "decimal_text")]
    pub cny_rate: Option<String>,
}

/// Accepts a rate as a string, an integer or a float. Floats arrive when the
/// rate is written unquoted (TOML, or an environment variable that figment
/// parses as a number); their shortest round-trip form is the text the user
/// wrote, so nothing is lost for ordinary rates.
fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Text(String),
        Int(u64),
        Float(f64),
    }
    Ok(match Option::<Num>::deserialize(d)? {
        None => None,
        Some(Num::Text(s)) => Some(s),
        Some(Num::Int(i)) => Some(i.to_string()),
        Some(Num::Float(f)) => Some(f.to_string()),
    })
}

/// Amount caps in the merchant's currency, minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AmountLimits {
    pub per_payment_minor: u64,
    pub per_payer_day_minor: u64,
}

/// Calls per minute per merchant and operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateSettings {
    pub create_per_min: NonZeroU32,
    pub query_per_min: NonZeroU32,
    pub refund_per_min: NonZeroU32,
}

impl RateSettings {
    pub fn per_min(&self, op: Op) -> NonZeroU32 {
        match op {
            Op::Create => self.create_per_min,
            Op::Query => self.query_per_min,
            Op::Refund => self.refund_per_min,
        }
    }
}

/// A merchant's effective limits after defaults and conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MerchantLimits {
    pub amounts: AmountLimits,
    pub rates: RateSettings,
}

impl MerchantLimits {
    /// [`check_amount`] with the store's signed amounts (negative counts as
    /// zero; the API refuses non-positive amounts before this).
    pub fn check_amount(
        &self,
        amount_minor: i64,
        payer_paid_today_minor: i64,
    ) -> Result<(), LimitExceeded> {
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        check_amount(
            &self.amounts,
            unsigned(amount_minor),
            unsigned(payer_paid_today_minor),
        )
    }
}

/// A limit setting that cannot be used; the caller adds the merchant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`limits.{field}`: {problem}")]
pub struct LimitsError {
    pub field: &'static str,
    pub problem: String,
}

impl LimitSettings {
    /// Applies the industry defaults, converting them from CNY when the
    /// merchant's currency is another one.
    pub fn resolve(
        &self,
        currency: &str,
        industry: Industry,
    ) -> Result<MerchantLimits, LimitsError> {
        let err = |field, problem: String| LimitsError { field, problem };
        let (default_payment, default_day) = industry.default_caps_cny_minor();
        let is_cny = currency == "CNY";
        if is_cny
            && let Some(rate) = &self.cny_rate
            && !parse_rate(rate).is_ok_and(|(num, scale)| num == 10u128.pow(scale))
        {
            return Err(err(
                "cny_rate",
                "the merchant's currency is CNY; leave the rate out (it can only be 1)".into(),
            ));
        }
        let amount = |field: &'static str, explicit: Option<u64>, default_cny: u64| match (
            explicit,
            &self.cny_rate,
        ) {
            (Some(0), _) => Err(err(field, "must be greater than zero".into())),
            (Some(v), _) => Ok(v),
            (None, _) if is_cny => Ok(default_cny),
            (None, Some(rate)) => {
                let v = convert_cny_minor(default_cny, rate, currency)
                    .map_err(|p| err("cny_rate", p))?;
                if v == 0 {
                    return Err(err(
                        field,
                        format!("the CNY default converted at `{rate}` is zero"),
                    ));
                }
                Ok(v)
            }
            (None, None) => Err(err(
                field,
                format!(
                    "the currency is {currency}, not CNY: set `cny_rate` to convert the \
                         CNY default, or set `{field}` in {currency} minor units"
                ),
            )),
        };
        let amounts = AmountLimits {
            per_payment_minor: amount(
                "per_payment_minor",
                self.per_payment_minor,
                default_payment,
            )?,
            per_payer_day_minor: amount(
                "per_payer_day_minor",
                self.per_payer_day_minor,
                default_day,
            )?,
        };
        let rate = |field: &'static str, v: Option<u32>, default: u32| {
            NonZeroU32::new(v.unwrap_or(default))
                .ok_or_else(|| err(field, "must be greater than zero".into()))
        };
        Ok(MerchantLimits {
            amounts,
            rates: RateSettings {
                create_per_min: rate(
                    "create_per_min",
                    self.create_per_min,
                    DEFAULT_CREATE_PER_MIN,
                )?,
                query_per_min: rate("query_per_min", self.query_per_min, DEFAULT_QUERY_PER_MIN)?,
                refund_per_min: rate(
                    "refund_per_min",
                    self.refund_per_min,
                    DEFAULT_REFUND_PER_MIN,
                )?,
            },
        })
    }
}

/// Converts an amount of CNY minor units into `currency` minor units at
/// `rate` (units of `currency` per 1 CNY, decimal text), rounding down.
/// Integer arithmetic only: floats would make a cap depend on rounding
/// noise.
pub fn convert_cny_minor(cny_minor: u64, rate: &str, currency: &str) -> Result<u64, String> {
    let cny_exp = payhost_sdk::money::exponent("CNY").map_err(|e| e.to_string())?;
    let exp = payhost_sdk::money::exponent(currency).map_err(|e| e.to_string())?;
    let (num, scale) = parse_rate(rate)?;
    // minor * rate * 10^exp / 10^cny_exp, with rate = num / 10^scale.
    let overflow = || format!("`{rate}` gives a limit too large to represent");
    let numerator = u128::from(cny_minor)
        .checked_mul(num)
        .and_then(|v| v.checked_mul(10u128.pow(exp)))
        .ok_or_else(overflow)?;
    let denominator = 10u128.pow(cny_exp + scale);
    u64::try_from(numerator / denominator).map_err(|_| overflow())
}

/// A positive plain decimal ("0.1385", "21", "7.5") as (digits, scale).
fn parse_rate(rate: &str) -> Result<(u128, u32), String> {
    let bad = || format!("`{rate}` is not a positive decimal number such as \"0.1385\"");
    let (int, frac) = rate.split_once('.').unwrap_or((rate, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !digits_ok(int)
        || !digits_ok(frac)
        || (rate.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    // Bounded so the products above fit comfortably in u128.
    if int.len() + frac.len() > 24 || frac.len() > 12 {
        return Err(format!(
            "`{rate}` has too many digits (at most 12 decimals)"
        ));
    }
    let num: u128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
    if num == 0 {
        return Err(format!("`{rate}` must be greater than zero"));
    }
    Ok((num, frac.len() as u32))
}

/// An amount over one of the caps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("amount exceeds the {limit} limit of {max_minor} minor units")]
pub struct LimitExceeded {
    /// `per_payment` or `per_payer_day`.
    pub limit: &'static str,
    pub max_minor: u64,
}

/// Checks one payment of `amount_minor` by a payer who already paid
/// `payer_paid_today_minor` today.
pub fn check_amount(
    limits: &AmountLimits,
    amount_minor: u64,
    payer_paid_today_minor: u64,
) -> Result<(), LimitExceeded> {
    if amount_minor > limits.per_payment_minor {
        return Err(LimitExceeded {
            limit: "per_payment",
            max_minor: limits.per_payment_minor,
        });
    }
    if payer_paid_today_minor.saturating_add(amount_minor) > limits.per_payer_day_minor {
        return Err(LimitExceeded {
            limit: "per_payer_day",
            max_minor: limits.per_payer_day_minor,
        });
    }
    Ok(())
}

/// Seed 002 (企业付款): at most 5,000.00 CNY per payout and per payee per
/// day, 100,000.00 CNY per merchant per day, 10 payouts per payee per day.
/// WeChat says its own figures are approximate and its answer decides;
/// these are what payhost refuses before asking it.
pub const PAYOUT_PER_PAYOUT_CNY_MINOR: u64 = 500_000;
pub const PAYOUT_PER_PAYEE_DAY_CNY_MINOR: u64 = 500_000;
pub const PAYOUT_PER_MERCHANT_DAY_CNY_MINOR: u64 = 10_000_000;
pub const PAYOUT_PER_PAYEE_DAY_COUNT: u32 = 10;
/// WeChat's merchant transfer requires the payee's real name from 2,000.00
/// CNY (providers.md 12.6).
pub const PAYOUT_REAL_NAME_FROM_CNY_MINOR: u64 = 200_000;

/// An amount setting in minor units of `currency`: as written (above zero,
/// within `i64`), else the seed's CNY default, which another currency has
/// no use for (`what` names the money it caps).
fn minor_amount(
    field: &'static str,
    explicit: Option<u64>,
    default_cny: u64,
    currency: &str,
    what: &str,
) -> Result<u64, LimitsError> {
    let err = |problem: String| LimitsError { field, problem };
    match explicit {
        Some(0) => Err(err("must be greater than zero".into())),
        Some(v) if v > i64::MAX as u64 => Err(err("is too large".into())),
        Some(v) => Ok(v),
        None if currency == "CNY" => Ok(default_cny),
        None => Err(err(format!(
            "{what} are in {currency}, not CNY: set `{field}` in its minor units"
        ))),
    }
}

/// `[merchants.payouts]` as written; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayoutSettings {
    /// The currency payouts are paid and counted in (CNY: WeChat pays
    /// wallets in CNY only).
    pub currency: Option<String>,
    pub per_payout_minor: Option<u64>,
    pub per_payee_day_minor: Option<u64>,
    pub per_merchant_day_minor: Option<u64>,
    pub per_payee_day_count: Option<u32>,
    /// Refuse a payout that names no payee real name for the provider to
    /// check (seed 002: no payouts to users who are not real-name verified).
    pub require_real_name: bool,
    /// From this amount a payout must name the payee's real name, whatever
    /// `require_real_name` says.
    pub real_name_from_minor: Option<u64>,
}

/// A merchant's payout policy after defaults, in `currency`'s minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutPolicy {
    pub currency: String,
    pub per_payout_minor: u64,
    pub per_payee_day_minor: u64,
    pub per_merchant_day_minor: u64,
    pub per_payee_day_count: u32,
    pub require_real_name: bool,
    pub real_name_from_minor: u64,
}

impl PayoutSettings {
    /// Applies seed 002's defaults (CNY); in another currency every amount
    /// must be given.
    pub fn resolve(&self) -> Result<PayoutPolicy, LimitsError> {
        let err = |field, problem: String| LimitsError { field, problem };
        let currency = self.currency.clone().unwrap_or_else(|| "CNY".into());
        payhost_sdk::money::exponent(&currency)
            .map_err(|e| err("currency", format!("`{currency}`: {e}")))?;
        let amount = |field, explicit, default_cny| {
            minor_amount(field, explicit, default_cny, &currency, "payouts")
        };
        let count = self
            .per_payee_day_count
            .unwrap_or(PAYOUT_PER_PAYEE_DAY_COUNT);
        if count == 0 {
            return Err(err(
                "per_payee_day_count",
                "must be greater than zero".into(),
            ));
        }
        Ok(PayoutPolicy {
            per_payout_minor: amount(
                "per_payout_minor",
                self.per_payout_minor,
                PAYOUT_PER_PAYOUT_CNY_MINOR,
            )?,
            per_payee_day_minor: amount(
                "per_payee_day_minor",
                self.per_payee_day_minor,
                PAYOUT_PER_PAYEE_DAY_CNY_MINOR,
            )?,
            per_merchant_day_minor: amount(
                "per_merchant_day_minor",
                self.per_merchant_day_minor,
                PAYOUT_PER_MERCHANT_DAY_CNY_MINOR,
            )?,
            real_name_from_minor: amount(
                "real_name_from_minor",
                self.real_name_from_minor,
                PAYOUT_REAL_NAME_FROM_CNY_MINOR,
            )?,
            per_payee_day_count: count,
            require_real_name: self.require_real_name,
            currency,
        })
    }
}

impl PayoutPolicy {
    /// What one payout alone must satisfy: the per-payout cap and the real
    /// name rule. The day's totals are checked in the store's insert.
    pub fn check_one(&self, amount_minor: i64, has_real_name: bool) -> Result<(), LimitExceeded> {
        let amount = u64::try_from(amount_minor).unwrap_or(0);
        if amount > self.per_payout_minor {
            return Err(LimitExceeded {
                limit: "per_payout",
                max_minor: self.per_payout_minor,
            });
        }
        if !has_real_name && (self.require_real_name || amount >= self.real_name_from_minor) {
            return Err(LimitExceeded {
                limit: "real_name_required",
                max_minor: if self.require_real_name {
                    0
                } else {
                    self.real_name_from_minor
                },
            });
        }
        Ok(())
    }

    /// The day's caps for the store's insert, the day starting at `since`.
    pub fn caps(&self, since: i64) -> crate::store::PayoutCaps {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        crate::store::PayoutCaps {
            since,
            per_payee_day_minor: signed(self.per_payee_day_minor),
            per_payee_day_count: i64::from(self.per_payee_day_count),
            per_merchant_day_minor: signed(self.per_merchant_day_minor),
        }
    }
}

/// Seed 003 (微信扣费服务): at most 50,000.00 CNY a deduction and 10
/// deductions per contract a day; a contract paused after 3 consecutive
/// failed deductions; a failed deduction retried no sooner than 6 hours
/// later. These are payhost's policy, checked before WeChat is asked;
/// WeChat's own quotas are lower and differ by template (providers.md
/// §13.8: 500.00 CNY a deduction to start, one a day for auto-renewal):
/// set them here when the template is known, and WeChat's refusal stays
/// authoritative.
pub const DEDUCTION_MAX_CNY_MINOR: u64 = 5_000_000;
pub const DEDUCTIONS_PER_CONTRACT_DAY: u32 = 10;
pub const DEDUCTION_PAUSE_AFTER_FAILURES: u32 = 3;
pub const DEDUCTION_RETRY_INTERVAL_SECS: u64 = 6 * 3600;

/// `[merchants.contracts]` as written; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContractSettings {
    /// The currency deductions are charged and capped in (CNY).
    pub currency: Option<String>,
    pub per_deduction_minor: Option<u64>,
    pub per_contract_day_count: Option<u32>,
    pub pause_after_failures: Option<u32>,
    pub retry_interval_secs: Option<u64>,
    /// `"HH:MM-HH:MM"` in the merchant's time zone: deductions are asked
    /// for only inside it (WeChat takes them 07:00-22:00 Beijing time,
    /// providers.md §13.8). Unset: any time.
    pub call_window: Option<String>,
}

/// A merchant's deduction policy after defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractPolicy {
    pub currency: String,
    pub per_deduction_minor: u64,
    pub per_contract_day_count: u32,
    pub pause_after_failures: u32,
    pub retry_interval_secs: u64,
    pub call_window: Option<CallWindow>,
}

/// A daily window of the merchant's day, `[from, until)` in minutes after
/// midnight; it does not cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallWindow {
    pub from_min: u16,
    pub until_min: u16,
}

impl CallWindow {
    /// `"07:00-22:00"`.
    pub fn parse(text: &str) -> Result<CallWindow, String> {
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        let bad = || format!("`{text}` is not a window like \"07:00-22:00\"");
        let (from, until) = text.split_once('-').ok_or_else(bad)?;
        let (from_min, until_min) = (
            minutes(from).ok_or_else(bad)?,
            minutes(until).ok_or_else(bad)?,
        );
        if from_min >= until_min {
            return Err(format!(
                "`{text}`: the window must start before it ends, within one day"
            ));
        }
        Ok(CallWindow {
            from_min,
            until_min,
        })
    }

    /// `None` when `at_ms` lies inside the window in `zone`; else when it
    /// next opens (Unix ms).
    pub fn next_open(&self, zone: &jiff::tz::TimeZone, at_ms: i64) -> Option<i64> {
        let now = jiff::Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(zone.clone());
        let minute = u16::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).ok()?;
        if (self.from_min..self.until_min).contains(&minute) {
            return None;
        }
        let day = if minute < self.from_min {
            now.date()
        } else {
            now.date().tomorrow().ok()?
        };
        let (h, m) = (self.from_min / 60, self.from_min % 60);
        let opens = day
            .at(i8::try_from(h).ok()?, i8::try_from(m).ok()?, 0, 0)
            .to_zoned(zone.clone())
            .ok()?;
        Some(opens.timestamp().as_millisecond())
    }
}

impl ContractSettings {
    /// Applies seed 003's defaults (CNY); in another currency the amount
    /// must be given.
    pub fn resolve(&self) -> Result<ContractPolicy, LimitsError> {
        let err = |field, problem: String| LimitsError { field, problem };
        let currency = self.currency.clone().unwrap_or_else(|| "CNY".into());
        payhost_sdk::money::exponent(&currency)
            .map_err(|e| err("currency", format!("`{currency}`: {e}")))?;
        let per_deduction_minor = minor_amount(
            "per_deduction_minor",
            self.per_deduction_minor,
            DEDUCTION_MAX_CNY_MINOR,
            &currency,
            "deductions",
        )?;
        let positive = |field, v: Option<u32>, default: u32| match v.unwrap_or(default) {
            0 => Err(err(field, "must be greater than zero".into())),
            n => Ok(n),
        };
        let retry_interval_secs = self
            .retry_interval_secs
            .unwrap_or(DEDUCTION_RETRY_INTERVAL_SECS);
        if retry_interval_secs > 30 * 86_400 {
            return Err(err(
                "retry_interval_secs",
                "must be at most 30 days (2592000)".into(),
            ));
        }
        let call_window = self
            .call_window
            .as_deref()
            .map(CallWindow::parse)
            .transpose()
            .map_err(|problem| err("call_window", problem))?;
        Ok(ContractPolicy {
            call_window,
            per_deduction_minor,
            per_contract_day_count: positive(
                "per_contract_day_count",
                self.per_contract_day_count,
                DEDUCTIONS_PER_CONTRACT_DAY,
            )?,
            pause_after_failures: positive(
                "pause_after_failures",
                self.pause_after_failures,
                DEDUCTION_PAUSE_AFTER_FAILURES,
            )?,
            retry_interval_secs,
            currency,
        })
    }
}

impl ContractPolicy {
    /// The caps for the store's insert, the merchant's day starting at
    /// `since`.
    pub fn caps(&self, since: i64) -> crate::store::DeductionCaps {
        crate::store::DeductionCaps {
            since,
            per_contract_day_count: i64::from(self.per_contract_day_count),
            pause_after_failures: i64::from(self.pause_after_failures),
            retry_interval_ms: i64::try_from(self.retry_interval_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        }
    }
}

/// Start (Unix ms) of the calendar day in `zone` that contains `at_ms`:
/// per-payer daily caps count the merchant's day, not UTC's.
pub fn day_start_ms(zone: &jiff::tz::TimeZone, at_ms: i64) -> i64 {
    jiff::Timestamp::from_millisecond(at_ms)
        .ok()
        .and_then(|t| t.to_zoned(zone.clone()).start_of_day().ok())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(at_ms - at_ms.rem_euclid(86_400_000))
}

/// The rate-limited operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create = 0,
    Query = 1,
    Refund = 2,
}

impl Op {
    /// The setting's name, which is also what a 429 reports.
    pub fn limit_name(self) -> &'static str {
        match self {
            Op::Create => "create_per_min",
            Op::Query => "query_per_min",
            Op::Refund => "refund_per_min",
        }
    }
}

/// A call over a merchant's rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {limit} reached; retry after {retry_after:?}")]
pub struct RateLimited {
    pub limit: &'static str,
    pub retry_after: Duration,
}

type Limiter<C> = Gcra<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One GCRA limiter (governor) per merchant and operation. Quotas differ per
/// merchant, so a keyed limiter with one quota does not fit; the map is
/// fixed at start, so lookups need no lock.
pub struct RateLimiter<C: Clock = DefaultClock> {
    clock: C,
    /// Indexed by `Op as usize`.
    limiters: HashMap<String, [Limiter<C>; 3]>,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("merchants", &self.limiters.len())
            .finish_non_exhaustive()
    }
}

impl RateLimiter<DefaultClock> {
    pub fn new<'a>(merchants: impl IntoIterator<Item = (&'a str, &'a RateSettings)>) -> Self {
        Self::with_clock(merchants, DefaultClock::default())
    }

    /// Takes one call of `op` from the merchant's rate: counted in `store`
    /// when replicas share it (the rate is the cluster's, the same GCRA
    /// with a burst of a minute's calls), in this process otherwise, and
    /// also when the shared count cannot be reached (the process's count
    /// still bounds the call).
    pub async fn take(
        &self,
        store: &dyn crate::store::Store,
        merchant_id: &str,
        rates: &RateSettings,
        op: Op,
    ) -> Result<(), RateLimited> {
        if store.shared() {
            const MINUTE_US: i64 = 60_000_000;
            let per_min = i64::from(rates.per_min(op).get());
            let taken = store
                .take_rate(
                    merchant_id,
                    op.limit_name(),
                    crate::clock::now_us(),
                    (MINUTE_US / per_min).max(1),
                    MINUTE_US,
                )
                .await;
            match taken {
                Ok(Some(Ok(()))) => return Ok(()),
                Ok(Some(Err(wait_us))) => {
                    return Err(RateLimited {
                        limit: op.limit_name(),
                        retry_after: Duration::from_micros(wait_us.max(0) as u64),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(merchant = merchant_id, error = %e,
                        "the shared request rate cannot be read; this replica counts alone")
                }
            }
        }
        self.check(merchant_id, op)
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// With another clock (tests use governor's fake clock).
    pub fn with_clock<'a>(
        merchants: impl IntoIterator<Item = (&'a str, &'a RateSettings)>,
        clock: C,
    ) -> Self {
        let limiters = merchants
            .into_iter()
            .map(|(id, rates)| {
                // A full minute's calls may come at once (burst = rate), then
                // one more per 60/rate seconds: a token bucket.
                let limiter = |op| {
                    Gcra::direct_with_clock(Quota::per_minute(rates.per_min(op)), clock.clone())
                };
                (
                    id.to_string(),
                    [limiter(Op::Create), limiter(Op::Query), limiter(Op::Refund)],
                )
            })
            .collect();
        Self { clock, limiters }
    }

    /// Takes one call from the merchant's budget for `op`. Merchants not
    /// configured are not limited here: authentication rejects them first.
    pub fn check(&self, merchant: &str, op: Op) -> Result<(), RateLimited> {
        let Some(limiters) = self.limiters.get(merchant) else {
            return Ok(());
        };
        limiters[op as usize]
            .check()
            .map_err(|not_until| RateLimited {
                limit: op.limit_name(),
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn settings(rate: Option<&str>) -> LimitSettings {
        LimitSettings {
            cny_rate: rate.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn the_day_starts_at_midnight_in_the_merchants_zone() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-12-01T16:30:00Z is 00:30 on 2 December in Shanghai.
        let at = 1_796_142_600_000;
        assert_eq!(day_start_ms(&shanghai, at), 1_796_140_800_000);
        // The same instant is still 1 December in UTC.
        assert_eq!(
            day_start_ms(&jiff::tz::TimeZone::UTC, at),
            1_796_083_200_000
        );
        // Amsterdam keeps summer time: 2026-07-01T00:30 local is 2026-06-30T22:30Z.
        let ams = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        assert_eq!(day_start_ms(&ams, 1_782_858_600_000), 1_782_856_800_000);
    }

    #[test]
    fn cny_defaults_by_industry() {
        let p = settings(None).resolve("CNY", Industry::Physical).unwrap();
        assert_eq!(
            p.amounts,
            AmountLimits {
                per_payment_minor: 8_000_000,
                per_payer_day_minor: 8_000_000
            }
        );
        let v = settings(None).resolve("CNY", Industry::Virtual).unwrap();
        assert_eq!(
            v.amounts,
            AmountLimits {
                per_payment_minor: 600_000,
                per_payer_day_minor: 900_000
            }
        );
        assert_eq!(v.rates.create_per_min.get(), 100);
        assert_eq!(v.rates.query_per_min.get(), 300);
        assert_eq!(v.rates.refund_per_min.get(), 50);
    }

    #[test]
    fn converts_with_exponents_and_rounds_down() {
        // 80,000 CNY * 0.1385 = 11,080.00 USD.
        assert_eq!(convert_cny_minor(8_000_000, "0.1385", "USD"), Ok(1_108_000));
        // JPY has no decimals: 80,000 * 20.5 = 1,640,000 JPY.
        assert_eq!(convert_cny_minor(8_000_000, "20.5", "JPY"), Ok(1_640_000));
        // BHD has three: 6,000 * 0.0523 = 313.800 BHD.
        assert_eq!(convert_cny_minor(600_000, "0.0523", "BHD"), Ok(313_800));
        // 6,000 * 0.333333 = 1,999.998 USD, rounded down to 1,999.99.
        assert_eq!(convert_cny_minor(600_000, "0.333333", "USD"), Ok(199_999));
        assert_eq!(convert_cny_minor(900_000, "1", "CNY"), Ok(900_000));
        for bad in ["", "-1", "0", "0.000", "1e3", ".5", "5.", "1,2", "abc"] {
            assert!(convert_cny_minor(100, bad, "USD").is_err(), "{bad}");
        }
        assert!(convert_cny_minor(100, "1", "XXX").is_err());
        assert!(convert_cny_minor(u64::MAX, "99999999999", "BHD").is_err());
    }

    #[test]
    fn resolves_other_currencies() {
        let v = settings(Some("0.1385"))
            .resolve("USD", Industry::Virtual)
            .unwrap();
        assert_eq!(
            v.amounts,
            AmountLimits {
                per_payment_minor: 83_100,
                per_payer_day_minor: 124_650
            }
        );
        // Explicit limits need no rate.
        let explicit = LimitSettings {
            per_payment_minor: Some(50_000),
            per_payer_day_minor: Some(70_000),
            create_per_min: Some(7),
            ..Default::default()
        };
        let e = explicit.resolve("EUR", Industry::Physical).unwrap();
        assert_eq!(e.amounts.per_payment_minor, 50_000);
        assert_eq!(e.amounts.per_payer_day_minor, 70_000);
        assert_eq!(e.rates.create_per_min.get(), 7);
        // An explicit one wins over the converted default.
        let mixed = LimitSettings {
            per_payment_minor: Some(1),
            cny_rate: Some("2".into()),
            ..Default::default()
        };
        let m = mixed.resolve("HKD", Industry::Physical).unwrap();
        assert_eq!(m.amounts.per_payment_minor, 1);
        assert_eq!(m.amounts.per_payer_day_minor, 16_000_000);
    }

    #[test]
    fn rejects_unusable_settings() {
        let e = settings(None)
            .resolve("USD", Industry::Physical)
            .unwrap_err();
        assert_eq!(e.field, "per_payment_minor");
        assert!(e.problem.contains("cny_rate"), "{e}");
        let half = LimitSettings {
            per_payment_minor: Some(100),
            ..Default::default()
        };
        let e = half.resolve("USD", Industry::Physical).unwrap_err();
        assert_eq!(e.field, "per_payer_day_minor");
        assert_eq!(
            settings(Some("1.5"))
                .resolve("CNY", Industry::Physical)
                .unwrap_err()
                .field,
            "cny_rate"
        );
        assert!(
            settings(Some("1.0"))
                .resolve("CNY", Industry::Physical)
                .is_ok()
        );
        assert!(
            settings(Some("1.00001"))
                .resolve("CNY", Industry::Physical)
                .is_err()
        );
        assert_eq!(
            settings(Some("abc"))
                .resolve("USD", Industry::Physical)
                .unwrap_err()
                .field,
            "cny_rate"
        );
        let zero = LimitSettings {
            refund_per_min: Some(0),
            ..Default::default()
        };
        assert_eq!(
            zero.resolve("CNY", Industry::Physical).unwrap_err().field,
            "refund_per_min"
        );
        let tiny = settings(Some("0.000000000001"))
            .resolve("USD", Industry::Virtual)
            .unwrap_err();
        assert!(tiny.problem.contains("zero"), "{tiny}");
    }

    #[test]
    fn amount_caps() {
        let l = AmountLimits {
            per_payment_minor: 600_000,
            per_payer_day_minor: 900_000,
        };
        assert_eq!(check_amount(&l, 600_000, 0), Ok(()));
        assert_eq!(
            check_amount(&l, 600_001, 0),
            Err(LimitExceeded {
                limit: "per_payment",
                max_minor: 600_000
            })
        );
        assert_eq!(check_amount(&l, 300_000, 600_000), Ok(()));
        assert_eq!(
            check_amount(&l, 300_001, 600_000),
            Err(LimitExceeded {
                limit: "per_payer_day",
                max_minor: 900_000
            })
        );
        assert_eq!(
            check_amount(&l, 1, u64::MAX).unwrap_err().limit,
            "per_payer_day"
        );
        let m = settings(None).resolve("CNY", Industry::Virtual).unwrap();
        assert_eq!(m.check_amount(600_000, 300_000), Ok(()));
        assert_eq!(
            m.check_amount(600_000, 300_001).unwrap_err().limit,
            "per_payer_day"
        );
        assert_eq!(m.check_amount(600_001, 0).unwrap_err().limit, "per_payment");
    }

    #[test]
    fn rates_per_merchant_and_operation() {
        let clock = FakeRelativeClock::default();
        let tight = LimitSettings {
            create_per_min: Some(2),
            query_per_min: Some(3),
            refund_per_min: Some(1),
            ..Default::default()
        }
        .resolve("CNY", Industry::Physical)
        .unwrap()
        .rates;
        let roomy = settings(None)
            .resolve("CNY", Industry::Physical)
            .unwrap()
            .rates;
        let limits = RateLimiter::with_clock([("a", &tight), ("b", &roomy)], clock.clone());

        assert_eq!(limits.check("a", Op::Create), Ok(()));
        assert_eq!(limits.check("a", Op::Create), Ok(()));
        let e = limits.check("a", Op::Create).unwrap_err();
        assert_eq!(e.limit, "create_per_min");
        // 2 per minute: the next call is possible 30 s after the first.
        assert_eq!(e.retry_after, Duration::from_secs(30));
        // Other operations and other merchants have their own budgets.
        for _ in 0..3 {
            assert_eq!(limits.check("a", Op::Query), Ok(()));
        }
        assert_eq!(
            limits.check("a", Op::Query).unwrap_err().limit,
            "query_per_min"
        );
        assert_eq!(limits.check("a", Op::Refund), Ok(()));
        assert_eq!(
            limits.check("a", Op::Refund).unwrap_err().limit,
            "refund_per_min"
        );
        for _ in 0..100 {
            assert_eq!(limits.check("b", Op::Create), Ok(()));
        }
        assert!(limits.check("b", Op::Create).is_err());
        // The budget refills with (fake) time.
        clock.advance(Duration::from_secs(30));
        assert_eq!(limits.check("a", Op::Create), Ok(()));
        assert!(limits.check("a", Op::Create).is_err());
        assert_eq!(limits.check("unknown", Op::Create), Ok(()));
    }

    #[test]
    fn payout_policy_defaults_are_seed_002s_and_other_currencies_must_say() {
        let p = PayoutSettings::default().resolve().unwrap();
        assert_eq!(p.currency, "CNY");
        assert_eq!(p.per_payout_minor, 500_000);
        assert_eq!(p.per_payee_day_minor, 500_000);
        assert_eq!(p.per_merchant_day_minor, 10_000_000);
        assert_eq!(p.per_payee_day_count, 10);
        assert_eq!(p.real_name_from_minor, 200_000);
        assert!(!p.require_real_name);
        let usd = PayoutSettings {
            currency: Some("USD".into()),
            ..Default::default()
        };
        assert_eq!(usd.resolve().unwrap_err().field, "per_payout_minor");
        for bad in [
            PayoutSettings {
                per_payee_day_count: Some(0),
                ..Default::default()
            },
            PayoutSettings {
                per_merchant_day_minor: Some(0),
                ..Default::default()
            },
            PayoutSettings {
                currency: Some("XYZW".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.resolve().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deduction_policy_defaults_are_seed_003s_and_bad_values_are_named() {
        let p = ContractSettings::default().resolve().unwrap();
        assert_eq!(
            (
                p.currency.as_str(),
                p.per_deduction_minor,
                p.per_contract_day_count,
                p.pause_after_failures,
                p.retry_interval_secs
            ),
            ("CNY", 5_000_000, 10, 3, 21_600)
        );
        let caps = p.caps(7);
        assert_eq!(
            (
                caps.since,
                caps.retry_interval_ms,
                caps.pause_after_failures
            ),
            (7, 21_600_000, 3)
        );
        let field = |s: ContractSettings| s.resolve().unwrap_err().field;
        assert_eq!(
            field(ContractSettings {
                currency: Some("EUR".into()),
                ..Default::default()
            }),
            "per_deduction_minor"
        );
        assert_eq!(
            field(ContractSettings {
                per_contract_day_count: Some(0),
                ..Default::default()
            }),
            "per_contract_day_count"
        );
        assert_eq!(
            field(ContractSettings {
                pause_after_failures: Some(0),
                ..Default::default()
            }),
            "pause_after_failures"
        );
        assert_eq!(
            field(ContractSettings {
                retry_interval_secs: Some(30 * 86_400 + 1),
                ..Default::default()
            }),
            "retry_interval_secs"
        );
        assert_eq!(
            field(ContractSettings {
                per_deduction_minor: Some(0),
                ..Default::default()
            }),
            "per_deduction_minor"
        );
        // No wait after a failure is the operator's choice.
        let none = ContractSettings {
            retry_interval_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(none.resolve().unwrap().caps(0).retry_interval_ms, 0);
    }

    #[test]
    fn a_call_window_admits_its_minutes_and_names_when_it_next_opens() {
        let w = CallWindow::parse("07:00-22:00").unwrap();
        assert_eq!((w.from_min, w.until_min), (420, 1320));
        for bad in [
            "7-22",
            "22:00-07:00",
            "07:00-07:00",
            "07:60-08:00",
            "25:00-26:00",
            "",
        ] {
            assert!(CallWindow::parse(bad).is_err(), "{bad}");
        }
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let at = |t: &str| {
            t.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned(zone.clone())
                .unwrap()
                .timestamp()
                .as_millisecond()
        };
        // 07:00 and 21:59:59 are inside; 06:59:59 waits a second, 22:00
        // waits for tomorrow's 07:00.
        assert_eq!(w.next_open(&zone, at("2026-12-04T07:00:00")), None);
        assert_eq!(w.next_open(&zone, at("2026-12-04T21:59:59")), None);
        assert_eq!(
            w.next_open(&zone, at("2026-12-04T06:59:59")),
            Some(at("2026-12-04T07:00:00"))
        );
        assert_eq!(
            w.next_open(&zone, at("2026-12-04T22:00:00")),
            Some(at("2026-12-05T07:00:00"))
        );
        let field = ContractSettings {
            call_window: Some("22-7".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .field;
        assert_eq!(field, "call_window");
    }

    #[test]
    fn one_payout_passes_its_cap_and_the_real_name_rule_or_names_which() {
        let p = PayoutSettings::default().resolve().unwrap();
        assert_eq!(p.check_one(500_000, true), Ok(()));
        assert_eq!(p.check_one(500_001, true).unwrap_err().limit, "per_payout");
        // WeChat wants the name from 2,000.00 CNY.
        assert_eq!(p.check_one(199_999, false), Ok(()));
        let e = p.check_one(200_000, false).unwrap_err();
        assert_eq!((e.limit, e.max_minor), ("real_name_required", 200_000));
        let strict = PayoutSettings {
            require_real_name: true,
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            strict.check_one(10, false).unwrap_err().limit,
            "real_name_required"
        );
        assert_eq!(strict.check_one(10, true), Ok(()));
    }
}
