//! Work spread over a few threads: every item done, in order, or the first error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{CoreError, Result};

/// Runs `work` on every item on `threads` threads; the first error stops the rest.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(items.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    let r = work(item);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(r);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| CoreError::Query("a worker thread panicked".into()))?;
    let mut out = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if out.len() == items.len() => Ok(out),
        None => Err(CoreError::Query("a worker stopped early".into())),
    }
}

/// How many threads file work (copies, hashing, deletes) uses: the cores, between 2 and 8.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_and_results_keep_their_order() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [1, 2, 7] {
            let out = parallel(&items, threads, |n| Ok(n * 2)).expect("no error");
            assert_eq!(out, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_error_is_returned_not_a_partial_result() {
        let items: Vec<u64> = (0..50).collect();
        for threads in [1, 4] {
            let out = parallel(&items, threads, |n| {
                if *n == 13 {
                    Err(CoreError::Query(format!("item {n} failed")))
                } else {
                    Ok(*n)
                }
            });
            match out {
                Err(CoreError::Query(m)) => assert_eq!(m, "item 13 failed"),
                other => panic!("expected item 13's error, got {other:?}"),
            }
        }
    }
}
