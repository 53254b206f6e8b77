//! Size limits on what an adapter hands back: the result of an operation
//! (ids, URLs, state words, messages, notification events) and the
//! requests it asks the host to send. Everything an adapter returns is
//! stored, served or sent on; without limits one adapter returned a
//! 24 MiB redirect URL, which was stored and served back.
//!
//! An oversized value ends the call with [`CallError::TooLarge`] naming
//! the field; nothing of it is kept.

use super::{Output, Step};
use crate::contract::{
    AdapterError, ContractRef, ContractSigning, ContractState, ContractStatus, DeductionState,
    DeductionStatus, HttpRequest, HttpResponse, Money, NotifyEvent, NotifyOutcome, OrderCreated,
    OrderRef, PayAction, PayoutState, PayoutStatus, RefundStatus, SignAction, TradeStatus,
};
use crate::error::CallError;

/// URLs: requests, redirects, QR code texts.
pub(crate) const MAX_URL_BYTES: usize = 8 * 1024;
/// Ids, state words, codes, currencies, payment parameters.
pub(crate) const MAX_TEXT_BYTES: usize = 1024;
/// Error messages.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Events in one notification.
pub(crate) const MAX_EVENTS: usize = 64;
/// Entries of a mini-program navigation's `extraData`.
pub(crate) const MAX_EXTRA_DATA: usize = 64;
/// Headers of a request or of a notification's answer, and their total
/// size (names and values).
pub(crate) const MAX_HEADERS: usize = 64;
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Body of a request the adapter asks for.
pub(crate) const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// Body of the answer to a provider's notification.
pub(crate) const MAX_ACK_BODY_BYTES: usize = 64 * 1024;

/// Checks a step's request or result against the limits.
pub(super) fn check_step(step: &Step) -> Result<(), CallError> {
    match step {
        Step::Send(req) => check_request(req),
        Step::Done(Ok(out)) => check_output(out),
        Step::Done(Err((error, ack))) => {
            check_error(error)?;
            ack.as_ref()
                .map_or(Ok(()), |a| check_response("ack", a, MAX_ACK_BODY_BYTES))
        }
    }
}

fn check_output(out: &Output) -> Result<(), CallError> {
    match out {
        Output::OrderCreated(c) => order_created(c),
        Output::TradeStatus(t) => trade_status("trade_status", t),
        Output::RefundStatus(r) => refund_status("refund_status", r),
        Output::Notify(n) => notify(n),
        Output::PayoutStatus(p) => payout_status("payout_status", p),
        Output::ContractSigning(c) => contract_signing(c),
        Output::ContractStatus(c) => contract_status("contract_status", c),
        Output::DeductionStatus(d) => deduction_status("deduction_status", d),
    }
}

/// Fails when `len` is over `limit`; `field` is built only then.
fn cap(
    len: usize,
    limit: usize,
    unit: &'static str,
    field: impl FnOnce() -> String,
) -> Result<(), CallError> {
    if len > limit {
        return Err(CallError::TooLarge {
            field: field(),
            limit,
            unit,
        });
    }
    Ok(())
}

fn text(at: &str, name: &str, value: &str, limit: usize) -> Result<(), CallError> {
    cap(value.len(), limit, "bytes", || format!("{at}.{name}"))
}

fn opt_text(at: &str, name: &str, value: &Option<String>) -> Result<(), CallError> {
    value
        .as_deref()
        .map_or(Ok(()), |v| text(at, name, v, MAX_TEXT_BYTES))
}

fn money(at: &str, name: &str, m: &Option<Money>) -> Result<(), CallError> {
    m.as_ref().map_or(Ok(()), |m| {
        text(
            &format!("{at}.{name}"),
            "currency",
            &m.currency,
            MAX_TEXT_BYTES,
        )
    })
}

fn order_ref(at: &str, r: &OrderRef) -> Result<(), CallError> {
    let at = &format!("{at}.order");
    text(
        at,
        "merchant_order_no",
        &r.merchant_order_no,
        MAX_TEXT_BYTES,
    )?;
    opt_text(at, "provider_trade_no", &r.provider_trade_no)?;
    opt_text(at, "channel_transaction_id", &r.channel_transaction_id)
}

fn order_created(c: &OrderCreated) -> Result<(), CallError> {
    let at = "order_created";
    order_ref(at, &c.order)?;
    let at = "order_created.action";
    match &c.action {
        PayAction::Redirect(url) => text(at, "redirect", url, MAX_URL_BYTES),
        PayAction::QrCode(code) => text(at, "qr_code", code, MAX_URL_BYTES),
        PayAction::MiniProgram(p) => {
            let at = "order_created.action.mini_program";
            for (name, value) in [
                ("app_id", &p.app_id),
                ("time_stamp", &p.time_stamp),
                ("nonce_str", &p.nonce_str),
                ("package", &p.package),
                ("sign_type", &p.sign_type),
                ("pay_sign", &p.pay_sign),
            ] {
                text(at, name, value, MAX_TEXT_BYTES)?;
            }
            Ok(())
        }
    }
}

fn trade_status(at: &str, t: &TradeStatus) -> Result<(), CallError> {
    order_ref(at, &t.order)?;
    text(at, "provider_state", &t.provider_state, MAX_TEXT_BYTES)?;
    money(at, "amount", &t.amount)?;
    opt_text(at, "payer_id", &t.payer_id)
}

fn refund_status(at: &str, r: &RefundStatus) -> Result<(), CallError> {
    order_ref(at, &r.order)?;
    text(at, "refund_no", &r.refund_no, MAX_TEXT_BYTES)?;
    opt_text(at, "provider_refund_id", &r.provider_refund_id)?;
    text(at, "provider_state", &r.provider_state, MAX_TEXT_BYTES)?;
    money(at, "amount", &r.amount)
}

fn payout_status(at: &str, p: &PayoutStatus) -> Result<(), CallError> {
    let payout = &format!("{at}.payout");
    text(
        payout,
        "merchant_payout_no",
        &p.payout.merchant_payout_no,
        MAX_TEXT_BYTES,
    )?;
    opt_text(payout, "provider_payout_id", &p.payout.provider_payout_id)?;
    text(at, "provider_state", &p.provider_state, MAX_TEXT_BYTES)?;
    money(at, "amount", &p.amount)?;
    opt_text(at, "payee_id", &p.payee_id)?;
    let state = &format!("{at}.state");
    match &p.state {
        PayoutState::PendingUserConfirmation(Some(c)) => {
            let at = &format!("{state}.pending_user_confirmation");
            text(at, "mch_id", &c.mch_id, MAX_TEXT_BYTES)?;
            text(at, "app_id", &c.app_id, MAX_TEXT_BYTES)?;
            // WeChat's package_info is an opaque token of a few hundred bytes.
            text(at, "package", &c.package, MAX_URL_BYTES)
        }
        PayoutState::Failed(reason) => text(state, "failed", reason, MAX_MESSAGE_BYTES),
        PayoutState::PendingUserConfirmation(None)
        | PayoutState::Accepted
        | PayoutState::Processing
        | PayoutState::Succeeded
        | PayoutState::Cancelled => Ok(()),
    }
}

fn contract_ref(at: &str, r: &ContractRef) -> Result<(), CallError> {
    let at = &format!("{at}.contract");
    text(
        at,
        "merchant_contract_no",
        &r.merchant_contract_no,
        MAX_TEXT_BYTES,
    )?;
    opt_text(at, "provider_contract_id", &r.provider_contract_id)
}

fn contract_signing(c: &ContractSigning) -> Result<(), CallError> {
    let at = "contract_signing";
    contract_ref(at, &c.contract)?;
    let at = "contract_signing.action";
    match &c.action {
        SignAction::Redirect(url) => text(at, "redirect", url, MAX_URL_BYTES),
        SignAction::QrCode(code) => text(at, "qr_code", code, MAX_URL_BYTES),
        SignAction::MiniProgramNavigation(n) => {
            let at = "contract_signing.action.mini_program_navigation";
            text(at, "app_id", &n.app_id, MAX_TEXT_BYTES)?;
            text(at, "path", &n.path, MAX_URL_BYTES)?;
            cap(n.extra_data.len(), MAX_EXTRA_DATA, "entries", || {
                format!("{at}.extra_data")
            })?;
            for (i, (k, v)) in n.extra_data.iter().enumerate() {
                let at = &format!("{at}.extra_data[{i}]");
                text(at, "name", k, MAX_TEXT_BYTES)?;
                // notify_url rides in extraData.
                text(at, "value", v, MAX_URL_BYTES)?;
            }
            Ok(())
        }
    }
}

fn contract_status(at: &str, c: &ContractStatus) -> Result<(), CallError> {
    contract_ref(at, &c.contract)?;
    opt_text(at, "plan_id", &c.plan_id)?;
    text(at, "provider_state", &c.provider_state, MAX_TEXT_BYTES)?;
    opt_text(at, "payer_id", &c.payer_id)?;
    match &c.state {
        ContractState::Terminated(reason) => text(
            &format!("{at}.state"),
            "terminated",
            reason,
            MAX_MESSAGE_BYTES,
        ),
        ContractState::PendingSignature | ContractState::Active => Ok(()),
    }
}

fn deduction_status(at: &str, d: &DeductionStatus) -> Result<(), CallError> {
    contract_ref(at, &d.contract)?;
    text(
        at,
        "merchant_deduction_no",
        &d.merchant_deduction_no,
        MAX_TEXT_BYTES,
    )?;
    opt_text(at, "provider_deduction_id", &d.provider_deduction_id)?;
    text(at, "provider_state", &d.provider_state, MAX_TEXT_BYTES)?;
    money(at, "amount", &d.amount)?;
    match &d.state {
        DeductionState::Failed(reason) => {
            text(&format!("{at}.state"), "failed", reason, MAX_MESSAGE_BYTES)
        }
        DeductionState::Pending | DeductionState::Succeeded => Ok(()),
    }
}

fn notify(n: &NotifyOutcome) -> Result<(), CallError> {
    cap(n.events.len(), MAX_EVENTS, "events", || {
        "notify.events".into()
    })?;
    for (i, e) in n.events.iter().enumerate() {
        match e {
            NotifyEvent::Payment(t) => trade_status(&format!("notify.events[{i}].payment"), t)?,
            NotifyEvent::Refund(r) => refund_status(&format!("notify.events[{i}].refund"), r)?,
            NotifyEvent::Payout(p) => payout_status(&format!("notify.events[{i}].payout"), p)?,
            NotifyEvent::Contract(c) => {
                contract_status(&format!("notify.events[{i}].contract"), c)?
            }
            NotifyEvent::Deduction(d) => {
                deduction_status(&format!("notify.events[{i}].deduction"), d)?
            }
        }
    }
    check_response("notify.ack", &n.ack, MAX_ACK_BODY_BYTES)
}

fn check_error(e: &AdapterError) -> Result<(), CallError> {
    let at = "error";
    match e {
        AdapterError::InvalidConfig(m)
        | AdapterError::InvalidRequest(m)
        | AdapterError::Unsupported(m)
        | AdapterError::MalformedResponse(m)
        | AdapterError::BadSignature(m)
        | AdapterError::Nondeterministic(m) => text(at, "message", m, MAX_MESSAGE_BYTES),
        AdapterError::ProviderRejected(r) => {
            text(at, "code", &r.code, MAX_TEXT_BYTES)?;
            text(at, "message", &r.message, MAX_MESSAGE_BYTES)
        }
    }
}

fn headers(at: &str, h: &[(String, String)]) -> Result<(), CallError> {
    cap(h.len(), MAX_HEADERS, "headers", || format!("{at}.headers"))?;
    let total = h.iter().map(|(n, v)| n.len() + v.len()).sum();
    cap(total, MAX_HEADER_BYTES, "bytes", || format!("{at}.headers"))
}

fn check_request(r: &HttpRequest) -> Result<(), CallError> {
    text("request", "url", &r.url, MAX_URL_BYTES)?;
    headers("request", &r.headers)?;
    cap(r.body.len(), MAX_REQUEST_BODY_BYTES, "bytes", || {
        "request.body".into()
    })
}

fn check_response(at: &str, r: &HttpResponse, max_body: usize) -> Result<(), CallError> {
    headers(at, &r.headers)?;
    cap(r.body.len(), max_body, "bytes", || format!("{at}.body"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{HttpMethod, TradeState};

    fn order(no: &str) -> OrderRef {
        OrderRef {
            merchant_order_no: no.into(),
            provider_trade_no: None,
            channel_transaction_id: None,
        }
    }

    fn field(r: Result<(), CallError>) -> String {
        match r {
            Err(CallError::TooLarge { field, .. }) => field,
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn names_the_oversized_field() {
        let big_url = Step::Done(Ok(Output::OrderCreated(OrderCreated {
            order: order("M-1"),
            action: PayAction::Redirect("x".repeat(MAX_URL_BYTES + 1)),
        })));
        assert_eq!(field(check_step(&big_url)), "order_created.action.redirect");

        let paid = |state: &str| TradeStatus {
            order: order("M-1"),
            state: TradeState::Paid,
            provider_state: state.into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        };
        let events = Step::Done(Ok(Output::Notify(NotifyOutcome {
            events: vec![NotifyEvent::Payment(paid("SUCCESS")); MAX_EVENTS + 1],
            ack: HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            },
        })));
        assert_eq!(field(check_step(&events)), "notify.events");
        let state = Step::Done(Ok(Output::Notify(NotifyOutcome {
            events: vec![
                NotifyEvent::Payment(paid("SUCCESS")),
                NotifyEvent::Payment(paid(&"S".repeat(MAX_TEXT_BYTES + 1))),
            ],
            ack: HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            },
        })));
        assert_eq!(
            field(check_step(&state)),
            "notify.events[1].payment.provider_state"
        );

        let req = |headers: usize, body: usize| {
            Step::Send(HttpRequest {
                method: HttpMethod::Post,
                url: "https://api.example/pay".into(),
                headers: vec![("x-a".into(), "1".into()); headers],
                body: vec![0; body],
                client_identity: None,
            })
        };
        assert!(check_step(&req(MAX_HEADERS, MAX_REQUEST_BODY_BYTES)).is_ok());
        assert_eq!(
            field(check_step(&req(MAX_HEADERS + 1, 0))),
            "request.headers"
        );
        assert_eq!(
            field(check_step(&req(1, MAX_REQUEST_BODY_BYTES + 1))),
            "request.body"
        );
        let long_error = Step::Done(Err((
            AdapterError::MalformedResponse("m".repeat(MAX_MESSAGE_BYTES + 1)),
            None,
        )));
        assert_eq!(field(check_step(&long_error)), "error.message");
    }

    #[test]
    fn payout_answers_are_capped_too() {
        use crate::contract::{PayeeConfirmation, PayoutRef};
        let status = |state: PayoutState| PayoutStatus {
            payout: PayoutRef {
                merchant_payout_no: "P-1".into(),
                provider_payout_id: None,
            },
            state,
            provider_state: "WAIT_USER_CONFIRM".into(),
            amount: None,
            payee_id: None,
            updated_at: None,
        };
        let waiting = |package: usize| {
            Step::Done(Ok(Output::PayoutStatus(status(
                PayoutState::PendingUserConfirmation(Some(PayeeConfirmation {
                    mch_id: "1900001109".into(),
                    app_id: "wxd678efh567hg6787".into(),
                    package: "p".repeat(package),
                })),
            ))))
        };
        assert!(check_step(&waiting(MAX_URL_BYTES)).is_ok());
        assert_eq!(
            field(check_step(&waiting(MAX_URL_BYTES + 1))),
            "payout_status.state.pending_user_confirmation.package"
        );
        let event = Step::Done(Ok(Output::Notify(NotifyOutcome {
            events: vec![NotifyEvent::Payout(status(PayoutState::Failed(
                "r".repeat(MAX_MESSAGE_BYTES + 1),
            )))],
            ack: HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            },
        })));
        assert_eq!(
            field(check_step(&event)),
            "notify.events[0].payout.state.failed"
        );
    }

    #[test]
    fn contract_answers_are_capped_too() {
        use crate::contract::MiniProgramNavigation;
        let contract = || ContractRef {
            merchant_contract_no: "C-1".into(),
            provider_contract_id: None,
        };
        let navigation = |entries: usize, value: usize| {
            Step::Done(Ok(Output::ContractSigning(ContractSigning {
                contract: contract(),
                action: SignAction::MiniProgramNavigation(MiniProgramNavigation {
                    app_id: "wxbd687630cd02ce1d".into(),
                    path: "pages/index/index".into(),
                    extra_data: (0..entries)
                        .map(|i| (format!("k{i}"), "v".repeat(value)))
                        .collect(),
                }),
            })))
        };
        assert!(check_step(&navigation(MAX_EXTRA_DATA, MAX_URL_BYTES)).is_ok());
        assert_eq!(
            field(check_step(&navigation(MAX_EXTRA_DATA + 1, 1))),
            "contract_signing.action.mini_program_navigation.extra_data"
        );
        assert_eq!(
            field(check_step(&navigation(1, MAX_URL_BYTES + 1))),
            "contract_signing.action.mini_program_navigation.extra_data[0].value"
        );
        let terminated = Step::Done(Ok(Output::ContractStatus(ContractStatus {
            contract: contract(),
            plan_id: None,
            state: ContractState::Terminated("r".repeat(MAX_MESSAGE_BYTES + 1)),
            provider_state: "1".into(),
            payer_id: None,
            changed_at: None,
        })));
        assert_eq!(
            field(check_step(&terminated)),
            "contract_status.state.terminated"
        );
        let deduction = |no: usize| DeductionStatus {
            contract: contract(),
            merchant_deduction_no: "d".repeat(no),
            provider_deduction_id: None,
            state: DeductionState::Pending,
            provider_state: "ACCEPT".into(),
            amount: None,
            paid_at: None,
        };
        let event = Step::Done(Ok(Output::Notify(NotifyOutcome {
            events: vec![NotifyEvent::Deduction(deduction(MAX_TEXT_BYTES + 1))],
            ack: HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            },
        })));
        assert_eq!(
            field(check_step(&event)),
            "notify.events[0].deduction.merchant_deduction_no"
        );
        assert!(check_step(&Step::Done(Ok(Output::DeductionStatus(deduction(32))))).is_ok());
    }
}
