//! What replicas share beyond orders: each merchant's request rate (one
//! GCRA row per merchant and operation) and the adapters (components by
//! digest, each slot's versions, and `NOTIFY` at each publication).

use super::{MAX_ATTEMPTS, PgStore, TxError, describe, pg_err};
use crate::store::{SharedSlot, SharedVersion, StoreError};
use futures_util::StreamExt as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel adapter publications are announced on; the payload is the
/// slot's name.
const ADAPTERS_CHANNEL: &str = "payhost_adapters";

/// GCRA in one statement: the row's theoretical arrival time moves one
/// interval past the later of itself and now, unless that would put it more
/// than a period ahead of now (the burst is spent): then no row comes back
/// and nothing changes.
const TAKE_RATE: &str = "INSERT INTO rate_limits AS r (merchant_id, op, tat_us)
     VALUES ($1, $2, $3::bigint + $4::bigint)
     ON CONFLICT (merchant_id, op) DO UPDATE
         SET tat_us = GREATEST(r.tat_us, $3::bigint) + $4::bigint
         WHERE GREATEST(r.tat_us, $3::bigint) + $4::bigint - $3::bigint <= $5::bigint
     RETURNING tat_us";

pub(super) async fn take_rate(
    store: &PgStore,
    merchant_id: &str,
    op: &str,
    now_us: i64,
    interval_us: i64,
    period_us: i64,
) -> Result<Result<(), i64>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_err)?;
    // A rate count lost in a crash only lets a few more calls through; the
    // caller should not wait for a disk flush for it.
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(pg_err)?;
    let taken = tx
        .query_opt(
            TAKE_RATE,
            &[&merchant_id, &op, &now_us, &interval_us, &period_us],
        )
        .await
        .map_err(pg_err)?;
    let answer = match taken {
        Some(_) => Ok(()),
        None => {
            let tat: i64 = tx
                .query_one(
                    "SELECT tat_us FROM rate_limits WHERE merchant_id = $1 AND op = $2",
                    &[&merchant_id, &op],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            Err((tat + interval_us - period_us - now_us).max(1))
        }
    };
    tx.commit().await.map_err(pg_err)?;
    Ok(answer)
}

pub(super) async fn adapter_slots(store: &PgStore) -> Result<Vec<SharedSlot>, StoreError> {
    store
        .read(
            "SELECT slot, generation, versions FROM adapter_slots ORDER BY slot",
            &[],
            |row| {
                let slot: String = row.get(0);
                let versions: Vec<SharedVersion> =
                    serde_json::from_str(row.get(2)).map_err(|e| {
                        StoreError::Corrupt(format!("versions of shared adapter `{slot}`: {e}"))
                    })?;
                Ok(SharedSlot {
                    generation: row.get(1),
                    slot,
                    versions,
                })
            },
        )
        .await
}

pub(super) async fn adapter_blob(
    store: &PgStore,
    digest: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(store
        .read(
            "SELECT bytes FROM adapter_blobs WHERE digest = $1",
            &[&digest],
            |row| Ok(row.get::<_, Vec<u8>>(0)),
        )
        .await?
        .into_iter()
        .next())
}

pub(super) async fn publish_adapter_slot(
    store: &PgStore,
    slot: &str,
    versions: &[SharedVersion],
    blobs: &[(String, Arc<[u8]>)],
) -> Result<i64, StoreError> {
    let listed = serde_json::to_string(versions)
        .map_err(|e| StoreError::Corrupt(format!("versions of adapter `{slot}`: {e}")))?;
    let wanted: HashSet<&str> = versions.iter().map(|v| v.digest.as_str()).collect();
    transaction!(store, |tx| {
        let stored: HashSet<String> = tx
            .query("SELECT digest FROM adapter_blobs WHERE slot = $1", &[&slot])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (digest, bytes) in blobs {
            if wanted.contains(digest.as_str()) && !stored.contains(digest) {
                tx.execute(
                    "INSERT INTO adapter_blobs (digest, slot, bytes) VALUES ($1, $2, $3)
                     ON CONFLICT (digest) DO NOTHING",
                    &[digest, &slot, &&bytes[..]],
                )
                .await?;
            }
        }
        for digest in stored.iter().filter(|d| !wanted.contains(d.as_str())) {
            tx.execute("DELETE FROM adapter_blobs WHERE digest = $1", &[digest])
                .await?;
        }
        let generation: i64 = tx
            .query_one(
                "INSERT INTO adapter_slots AS s (slot, generation, versions, changed_at)
                 VALUES ($1, 1, $2, $3)
                 ON CONFLICT (slot) DO UPDATE
                     SET generation = s.generation + 1, versions = EXCLUDED.versions,
                         changed_at = EXCLUDED.changed_at
                 RETURNING generation",
                &[&slot, &listed, &crate::clock::now_ms()],
            )
            .await?
            .get(0);
        // Delivered to the listeners when this transaction commits.
        tx.execute("SELECT pg_notify($1, $2)", &[&ADAPTERS_CHANNEL, &slot])
            .await?;
        Ok::<_, TxError>(generation)
    })
}

/// Listens on [`ADAPTERS_CHANNEL`] on a connection of its own, waking
/// `wake` at each notification and once after each connection (a change
/// made while it was away is then found by the caller's check). A lost
/// connection is opened again after a second.
pub(super) async fn listen_for_adapters(config: Arc<tokio_postgres::Config>, wake: Arc<Notify>) {
    loop {
        let ended = listen_once(&config, &wake).await;
        let why = match &ended {
            Ok(()) => "closed by the server".to_string(),
            Err(e) => describe(e),
        };
        tracing::warn!(error = %why,
            "the connection listening for adapter changes ended; opening it again in 1 s (the periodic check covers the gap)");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection delivers notifications only while it is polled; it is
    // polled here, beside the LISTEN it serves.
    let driver = async {
        let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(_) = message? {
                wake.notify_one();
            }
        }
        Ok(())
    };
    let listen = async {
        client
            .batch_execute(&format!("LISTEN {ADAPTERS_CHANNEL}"))
            .await?;
        wake.notify_one();
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::select! {
        ended = driver => ended,
        ended = listen => ended,
    }
}
