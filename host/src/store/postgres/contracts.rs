//! Contracts and deductions on PostgreSQL, each step inside the caller's
//! transaction.

use super::TxError;
use super::updates::{ADVISORY_XACT_LOCK, append_events, execute, pg_binds, query, query_opt};
use crate::store::contracts::{
    CAS_CONTRACT, CAS_DEDUCTION, CONTRACT_COLUMNS, DEDUCTION_COLUMNS, DEDUCTIONS_OF_DAY,
    FAILURE_RUN, INSERT_CONTRACT, INSERT_DEDUCTION, OPEN_CONTRACT, OPEN_DEDUCTION, SELECT_CONTRACT,
    SELECT_DEDUCTION, contract_binds, contract_from, deduction_binds, deduction_from,
};
use crate::store::rows::Columns;
use crate::store::{
    Contract, Deduction, DeductionCaps, DeductionHistory, Inserted, NewEvent, StoreError,
};
use deadpool_postgres::{GenericClient, Transaction};
use std::sync::LazyLock;

/// [`super::LEASE_ORDERS_TO_POLL`] for contracts waiting for a signature.
pub(super) static LEASE_CONTRACTS_TO_POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS (
             SELECT merchant_id, contract_no FROM contracts
             WHERE {OPEN_CONTRACT} AND next_poll_at <= ?1
             ORDER BY next_poll_at LIMIT ?2 FOR UPDATE SKIP LOCKED),
         leased AS (
             UPDATE contracts SET next_poll_at = ?3
             WHERE (merchant_id, contract_no) IN (SELECT * FROM due))
         SELECT {CONTRACT_COLUMNS} FROM contracts
         WHERE (merchant_id, contract_no) IN (SELECT * FROM due)
         ORDER BY next_poll_at"
    )
});

/// Likewise for deductions not final.
pub(super) static LEASE_DEDUCTIONS_TO_POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS (
             SELECT merchant_id, deduction_no FROM deductions
             WHERE {OPEN_DEDUCTION} AND next_poll_at <= ?1
             ORDER BY next_poll_at LIMIT ?2 FOR UPDATE SKIP LOCKED),
         leased AS (
             UPDATE deductions SET next_poll_at = ?3
             WHERE (merchant_id, deduction_no) IN (SELECT * FROM due))
         SELECT {DEDUCTION_COLUMNS} FROM deductions
         WHERE (merchant_id, deduction_no) IN (SELECT * FROM due)
         ORDER BY next_poll_at"
    )
});

/// [`SELECT_CONTRACT`] holding the row against a concurrent change until
/// the transaction ends.
static SELECT_CONTRACT_FOR_SHARE: LazyLock<String> =
    LazyLock::new(|| format!("{} FOR SHARE", *SELECT_CONTRACT));

pub(super) async fn select_contract(
    c: &impl GenericClient,
    merchant: &str,
    no: &str,
) -> Result<Option<Contract>, TxError> {
    match query_opt(c, &SELECT_CONTRACT, &[&merchant, &no]).await? {
        Some(row) => Ok(Some(contract_from(&row)?)),
        None => Ok(None),
    }
}

pub(super) async fn select_deduction(
    c: &impl GenericClient,
    merchant: &str,
    no: &str,
) -> Result<Option<Deduction>, TxError> {
    match query_opt(c, &SELECT_DEDUCTION, &[&merchant, &no]).await? {
        Some(row) => Ok(Some(deduction_from(&row)?)),
        None => Ok(None),
    }
}

pub(super) async fn insert_contract(
    tx: &Transaction<'_>,
    c: &Contract,
) -> Result<Inserted<Contract>, TxError> {
    let binds = contract_binds(c, c.updated_at, 1);
    if execute(tx, &INSERT_CONTRACT, &pg_binds(&binds)).await? == 1 {
        return Ok(Inserted::New(Contract {
            version: 1,
            ..c.clone()
        }));
    }
    select_contract(tx, &c.merchant_id, &c.contract_no)
        .await?
        .map(Inserted::Existing)
        .ok_or_else(|| StoreError::Corrupt("contract vanished during insert".into()).into())
}

pub(super) async fn update_contract(
    tx: &Transaction<'_>,
    c: &Contract,
    events: &[NewEvent],
    now: i64,
) -> Result<Contract, TxError> {
    let binds = contract_binds(c, now, c.version);
    if execute(tx, CAS_CONTRACT, &pg_binds(&binds)).await? == 0 {
        return Err(StoreError::Conflict.into());
    }
    append_events(tx, &c.merchant_id, events, now).await?;
    Ok(Contract {
        version: c.version + 1,
        updated_at: now,
        ..c.clone()
    })
}

pub(super) async fn history(
    c: &impl GenericClient,
    merchant: &str,
    contract_no: &str,
    since: i64,
    failures_from: i64,
) -> Result<DeductionHistory, TxError> {
    let day = query(c, DEDUCTIONS_OF_DAY, &[&merchant, &contract_no, &since]).await?;
    let run = query(c, FAILURE_RUN, &[&merchant, &contract_no, &failures_from]).await?;
    let (Some(day), Some(run)) = (day.first(), run.first()) else {
        return Err(StoreError::Corrupt("a count returned no row".into()).into());
    };
    Ok(DeductionHistory {
        day_count: day.int(0)?,
        consecutive_failures: run.int(0)?,
        last_failure_at: run.opt_int(1)?,
    })
}

/// Inserts `d` unless its number exists, under `caps`. An advisory lock
/// per contract serializes its deductions' checks and inserts across
/// connections and replicas (as a payer's cap does), and the contract row
/// is read `FOR SHARE`, so a termination waits for the insert or the
/// insert sees it.
pub(super) async fn insert_deduction(
    tx: &Transaction<'_>,
    d: &Deduction,
    caps: &DeductionCaps,
) -> Result<Inserted<Deduction>, TxError> {
    let lock = format!("deductions\u{1f}{}\u{1f}{}", d.merchant_id, d.contract_no);
    tx.execute(ADVISORY_XACT_LOCK, &[&lock]).await?;
    if let Some(existing) = select_deduction(tx, &d.merchant_id, &d.deduction_no).await? {
        return Ok(Inserted::Existing(existing));
    }
    let contract = match query_opt(
        tx,
        &SELECT_CONTRACT_FOR_SHARE,
        &[&d.merchant_id, &d.contract_no],
    )
    .await?
    {
        Some(row) => contract_from(&row)?,
        None => {
            return Err(StoreError::Corrupt(format!("no contract {}", d.contract_no)).into());
        }
    };
    let h = history(
        tx,
        &d.merchant_id,
        &d.contract_no,
        caps.since,
        contract.failures_counted_from,
    )
    .await?;
    caps.check(&contract, h, d.created_at)
        .map_err(StoreError::Deduction)?;
    let binds = deduction_binds(d, d.updated_at, 1);
    execute(tx, &INSERT_DEDUCTION, &pg_binds(&binds)).await?;
    Ok(Inserted::New(Deduction {
        version: 1,
        ..d.clone()
    }))
}

pub(super) async fn update_deduction(
    tx: &Transaction<'_>,
    d: &Deduction,
    events: &[NewEvent],
    now: i64,
) -> Result<Deduction, TxError> {
    let binds = deduction_binds(d, now, d.version);
    if execute(tx, CAS_DEDUCTION, &pg_binds(&binds)).await? == 0 {
        return Err(StoreError::Conflict.into());
    }
    append_events(tx, &d.merchant_id, events, now).await?;
    Ok(Deduction {
        version: d.version + 1,
        updated_at: now,
        ..d.clone()
    })
}
