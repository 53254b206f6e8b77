//! Contracts and deductions on SQLite. The single writer makes a
//! deduction's checks and its insert one atomic step.

use super::bound;
use super::rows::{query_all, query_opt, sql_err};
use super::updates::append_events;
use crate::clock::now_ms;
use crate::store::contracts::{
    CAS_CONTRACT, CAS_DEDUCTION, CONTRACTS_TO_POLL, DEDUCTIONS_OF_DAY, DEDUCTIONS_TO_POLL,
    FAILURE_RUN, INSERT_CONTRACT, INSERT_DEDUCTION, SELECT_CONTRACT, SELECT_DEDUCTION,
    contract_binds, contract_from, deduction_binds, deduction_from,
};
use crate::store::{
    Contract, Deduction, DeductionCaps, DeductionHistory, Inserted, NewEvent, StoreError,
};
use rusqlite::{Connection, params};

pub(super) fn select_contract(
    conn: &Connection,
    merchant: &str,
    no: &str,
) -> Result<Option<Contract>, StoreError> {
    query_opt(conn, &SELECT_CONTRACT, params![merchant, no], |r| {
        contract_from(r)
    })
}

pub(super) fn select_deduction(
    conn: &Connection,
    merchant: &str,
    no: &str,
) -> Result<Option<Deduction>, StoreError> {
    query_opt(conn, &SELECT_DEDUCTION, params![merchant, no], |r| {
        deduction_from(r)
    })
}

pub(super) fn insert_contract(
    conn: &Connection,
    c: &Contract,
) -> Result<Inserted<Contract>, StoreError> {
    let n = conn
        .prepare_cached(&INSERT_CONTRACT)
        .and_then(|mut s| s.execute(bound(contract_binds(c, c.updated_at, 1))))
        .map_err(sql_err)?;
    if n == 1 {
        return Ok(Inserted::New(Contract {
            version: 1,
            ..c.clone()
        }));
    }
    select_contract(conn, &c.merchant_id, &c.contract_no)?
        .map(Inserted::Existing)
        .ok_or_else(|| StoreError::Corrupt("contract vanished during insert".into()))
}

pub(super) fn update_contract(
    conn: &Connection,
    c: &Contract,
    events: &[NewEvent],
) -> Result<Contract, StoreError> {
    let now = now_ms();
    let changed = conn
        .prepare_cached(CAS_CONTRACT)
        .and_then(|mut s| s.execute(bound(contract_binds(c, now, c.version))))
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::Conflict);
    }
    append_events(conn, &c.merchant_id, events, now)?;
    Ok(Contract {
        version: c.version + 1,
        updated_at: now,
        ..c.clone()
    })
}

pub(super) fn history(
    conn: &Connection,
    merchant: &str,
    contract_no: &str,
    since: i64,
    failures_from: i64,
) -> Result<DeductionHistory, StoreError> {
    let day_count = conn
        .prepare_cached(DEDUCTIONS_OF_DAY)
        .and_then(|mut s| s.query_row(params![merchant, contract_no, since], |r| r.get(0)))
        .map_err(sql_err)?;
    let (consecutive_failures, last_failure_at) = conn
        .prepare_cached(FAILURE_RUN)
        .and_then(|mut s| {
            s.query_row(params![merchant, contract_no, failures_from], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(sql_err)?;
    Ok(DeductionHistory {
        day_count,
        consecutive_failures,
        last_failure_at,
    })
}

pub(super) fn insert_deduction(
    conn: &Connection,
    d: &Deduction,
    caps: &DeductionCaps,
) -> Result<Inserted<Deduction>, StoreError> {
    if let Some(existing) = select_deduction(conn, &d.merchant_id, &d.deduction_no)? {
        return Ok(Inserted::Existing(existing));
    }
    let contract = select_contract(conn, &d.merchant_id, &d.contract_no)?
        .ok_or_else(|| StoreError::Corrupt(format!("no contract {}", d.contract_no)))?;
    let h = history(
        conn,
        &d.merchant_id,
        &d.contract_no,
        caps.since,
        contract.failures_counted_from,
    )?;
    caps.check(&contract, h, d.created_at)
        .map_err(StoreError::Deduction)?;
    conn.prepare_cached(&INSERT_DEDUCTION)
        .and_then(|mut s| s.execute(bound(deduction_binds(d, d.updated_at, 1))))
        .map_err(sql_err)?;
    Ok(Inserted::New(Deduction {
        version: 1,
        ..d.clone()
    }))
}

pub(super) fn update_deduction(
    conn: &Connection,
    d: &Deduction,
    events: &[NewEvent],
) -> Result<Deduction, StoreError> {
    let now = now_ms();
    let changed = conn
        .prepare_cached(CAS_DEDUCTION)
        .and_then(|mut s| s.execute(bound(deduction_binds(d, now, d.version))))
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::Conflict);
    }
    append_events(conn, &d.merchant_id, events, now)?;
    Ok(Deduction {
        version: d.version + 1,
        updated_at: now,
        ..d.clone()
    })
}

pub(super) fn contracts_to_poll(
    conn: &Connection,
    now: i64,
    limit: i64,
) -> Result<Vec<Contract>, StoreError> {
    query_all(conn, &CONTRACTS_TO_POLL, params![now, limit], |r| {
        contract_from(r)
    })
}

pub(super) fn deductions_to_poll(
    conn: &Connection,
    now: i64,
    limit: i64,
) -> Result<Vec<Deduction>, StoreError> {
    query_all(conn, &DEDUCTIONS_TO_POLL, params![now, limit], |r| {
        deduction_from(r)
    })
}
