//! The lock that orders writes to one table within this process.
//!
//! Whatever must see a table still (UPDATE, DELETE, a subscription's start, drop) holds it
//! exclusively. An INSERT into a user table holds it shared, and with it the lock of its
//! user's stripe: a user's rows are keyed under the user's id, so INSERTs of different users
//! touch disjoint keys, check their keys for duplicates independently, and their synced
//! writes reach RocksDB together, which commits them as one group with one WAL fsync.
//!
//! A flush holds the table's flush lock from start to end (one flush at a time, and no drop
//! meanwhile) but the table itself only while it commits each file: it reads rows from a
//! snapshot and writes (or uploads) their file while others write, then, holding the table
//! alone, removes from the hot tier only the rows still as it read them (see `flush.rs`).
//! Drop takes the flush lock before the table, as a flush does: the two never wait on each
//! other in opposite orders.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Users share a stripe when their ids hash alike: a bound on the locks, whatever the number
/// of users, at the price of rare waits between two users of one stripe.
const STRIPES: usize = 16;

#[derive(Default)]
pub struct TableLock {
    table: RwLock<()>,
    stripes: [Mutex<()>; STRIPES],
    flush: Mutex<()>,
    /// Holds released by writers: counted when a hold ends, so after whatever it wrote. A
    /// flush that finds the count where it was before its snapshot knows no row changed
    /// since (see [`TableLock::released`]).
    released: AtomicU64,
}

/// Counts its hold as released when dropped, after the writer's work.
struct Counted<'a>(&'a AtomicU64);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An INSERT's hold on one user's rows of a table: the table shared, the user's stripe alone.
pub struct UserGuard<'a> {
    // Fields drop in order: counted while the locks are still held.
    _counted: Counted<'a>,
    _stripe: MutexGuard<'a, ()>,
    _table: RwLockReadGuard<'a, ()>,
}

/// A writer's hold on the whole table.
pub struct Alone<'a> {
    _counted: Counted<'a>,
    _table: RwLockWriteGuard<'a, ()>,
}

/// What a writer holds: the whole table, or one user's rows of it.
pub enum Hold<'a> {
    Table(Alone<'a>),
    User(UserGuard<'a>),
}

impl TableLock {
    /// An INSERT's hold: one user's rows when `user` is given and no live query watches the
    /// table (`watched`), checked again once held, as a subscription starts under the
    /// exclusive hold (its change feed must see every write); otherwise the whole table.
    pub async fn insert(&self, user: Option<&str>, watched: impl Fn() -> bool) -> Hold<'_> {
        if let Some(user) = user.filter(|_| !watched()) {
            let held = self.user(user).await;
            if !watched() {
                return Hold::User(held);
            }
        }
        Hold::Table(self.exclusive().await)
    }

    /// The whole table, alone.
    pub async fn exclusive(&self) -> Alone<'_> {
        let table = self.table.write().await;
        Alone {
            _counted: Counted(&self.released),
            _table: table,
        }
    }

    /// How many writers' holds have ended. Read before a snapshot of the table, then again
    /// while holding the table alone: the same count means nothing was written in between
    /// (a write that began before the first read ends, and is counted, after it).
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::SeqCst)
    }

    /// The whole table, alone, waited for from synchronous code (a flush between two files,
    /// on a blocking thread or a current-thread runtime's only task): the wait happens on a
    /// thread of its own, outside any runtime.
    pub fn exclusive_blocking(&self) -> crate::Result<RwLockWriteGuard<'_, ()>> {
        std::thread::scope(|s| s.spawn(|| self.table.blocking_write()).join())
            .map_err(|_| crate::CoreError::Query("waiting for a table's lock panicked".into()))
    }

    /// The right to flush the table (and to drop it): one at a time.
    pub async fn flushing(&self) -> MutexGuard<'_, ()> {
        self.flush.lock().await
    }

    /// One user's rows, alone; other users' INSERTs proceed.
    pub async fn user(&self, user_id: &str) -> UserGuard<'_> {
        let table = self.table.read().await;
        let stripe = self.stripes[stripe_of(user_id)].lock().await;
        UserGuard {
            _counted: Counted(&self.released),
            _stripe: stripe,
            _table: table,
        }
    }
}

fn stripe_of(user_id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    user_id.hash(&mut h);
    // The remainder is below STRIPES, so it fits any usize.
    (h.finish() % STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn users_write_side_by_side_and_exclusive_waits_for_them() {
        let lock = std::sync::Arc::new(TableLock::default());
        let (a, b) = (
            "alice",
            (0..100)
                .map(|i| format!("u{i}"))
                .find(|u| stripe_of(u) != stripe_of("alice"))
                .expect("another stripe"),
        );
        let held = lock.user(a).await;
        // Another user's INSERT is not held up by alice's.
        let other = tokio::time::timeout(Duration::from_secs(5), lock.user(&b)).await;
        assert!(other.is_ok(), "a different user's stripe waited");
        drop(other);
        // The same user's second INSERT waits for the first.
        let same = tokio::time::timeout(Duration::from_millis(50), lock.user(a)).await;
        assert!(same.is_err(), "a user's second INSERT did not wait");
        // A flush waits for every INSERT in progress, then holds them off.
        let waiting = {
            let lock = std::sync::Arc::clone(&lock);
            tokio::spawn(async move {
                let _whole = lock.exclusive().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "exclusive did not wait for a user's hold"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("exclusive got the table once the INSERT ended")
            .expect("task");
    }
}
