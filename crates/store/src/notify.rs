//! Change notices between platform processes (SPEC §16): PostgreSQL LISTEN/NOTIFY, and an
//! in-process broadcast on SQLite (which only ever has one platform process).

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::{Backend, Store, StoreError};

/// The one channel every platform process listens on.
const CHANNEL: &str = "switchyard_changes";

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
pub const MAX_NOTICE_BYTES: usize = 7_999;

/// Capacity of the in-process channel; a listener further behind gets `Ok(None)` (resync).
const LOCAL_CAPACITY: usize = 1_024;

pub(crate) fn local_channel() -> broadcast::Sender<String> {
    broadcast::channel(LOCAL_CAPACITY).0
}

/// Receives the notices published by any platform process (including this one).
pub struct Listener {
    inner: ListenerInner,
}

enum ListenerInner {
    Local(broadcast::Receiver<String>),
    Postgres(Box<PgListener>),
}

impl Listener {
    /// The next notice. `Ok(None)` means notices may have been missed (the connection was
    /// re-established, or this listener fell behind): reload whatever the notices are about.
    pub async fn recv(&mut self) -> Result<Option<String>, StoreError> {
        match &mut self.inner {
            ListenerInner::Local(rx) => match rx.recv().await {
                Ok(payload) => Ok(Some(payload)),
                Err(broadcast::error::RecvError::Lagged(_)) => Ok(None),
                // The store (and its sender) is gone: nothing will ever arrive.
                Err(broadcast::error::RecvError::Closed) => {
                    Err(StoreError::Unavailable(sqlx::Error::PoolClosed))
                }
            },
            ListenerInner::Postgres(l) => Ok(l.try_recv().await?.map(|n| n.payload().to_owned())),
        }
    }
}

impl Store {
    /// Publishes `payload` (at most [`MAX_NOTICE_BYTES`]) to every listener of every
    /// platform process sharing this database. Delivery is at most once; listeners resync
    /// on `Ok(None)`, so a notice says what to reload, never carries the data itself.
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        if payload.len() > MAX_NOTICE_BYTES {
            return Err(StoreError::Config(format!(
                "notice of {} bytes exceeds {MAX_NOTICE_BYTES}",
                payload.len()
            )));
        }
        match &self.backend {
            Backend::Sqlite(_) => {
                // No receiver is not an error: nobody is listening yet.
                let _ = self.local.send(payload.to_owned());
                Ok(())
            }
            Backend::Postgres(pool) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Starts listening; notices published after this returns are received.
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(_) => ListenerInner::Local(self.local.subscribe()),
            Backend::Postgres(pool) => {
                let mut l = PgListener::connect_with(pool).await?;
                l.listen(CHANNEL).await?;
                ListenerInner::Postgres(Box::new(l))
            }
        };
        Ok(Listener { inner })
    }
}
