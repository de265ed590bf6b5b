//! Running one async task per item with a bound on how many run at once, for work whose cost
//! grows with the cluster (creating node containers): a 100-node cluster must not send Docker
//! 100 requests at the same moment.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};

/// Runs `task` on every item, at most `limit` at a time, and returns the results in item
/// order. After the first failure no new task starts, but those already started finish (so
/// nothing is left half-sent when the caller cleans up); the first failure is returned.
pub(super) async fn run_all<'a, T, R, E, F, Fut>(
    items: &'a [T],
    limit: usize,
    task: F,
) -> Result<Vec<R>, E>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let failed = AtomicBool::new(false);
    let (task, failed_ref) = (&task, &failed);
    let results: Vec<Option<Result<R, E>>> = stream::iter(items)
        .map(|item| async move {
            if failed_ref.load(Ordering::SeqCst) {
                return None;
            }
            let result = task(item).await;
            if result.is_err() {
                failed_ref.store(true, Ordering::SeqCst);
            }
            Some(result)
        })
        .buffered(limit.max(1))
        .collect()
        .await;
    let mut out = Vec::with_capacity(items.len());
    let mut first_error = None;
    for result in results.into_iter().flatten() {
        match result {
            Ok(r) => out.push(r),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn at_most_limit_tasks_run_at_once_and_results_keep_their_order() {
        let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<u64> = (0..20).collect();
        let out = run_all(&items, 4, |i| {
            let (running, peak) = (&running, &peak);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5 + (20 - i) % 7)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<u64, String>(*i * 10)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn after_a_failure_no_new_task_starts_but_started_ones_finish() {
        let (started, finished) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
        let items: Vec<u32> = (0..3000).collect();
        let result = run_all(&items, 3, |i| {
            let (started, finished) = (&started, &finished);
            async move {
                started.lock().unwrap().push(*i);
                if *i == 1 {
                    return Err(format!("item {i} failed"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                finished.lock().unwrap().push(*i);
                Ok(())
            }
        })
        .await;
        assert_eq!(result, Err("item 1 failed".to_string()));
        let started = started.into_inner().unwrap();
        assert!(started.len() <= 4, "{started:?}");
        let mut finished = finished.into_inner().unwrap();
        finished.sort();
        assert_eq!(
            finished,
            started.into_iter().filter(|i| *i != 1).collect::<Vec<_>>()
        );
    }
}
