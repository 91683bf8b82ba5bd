//! Directory fsyncs shared by concurrent writers.
//!
//! Every write to a [`FileStore`](super::FileStore) ends by fsyncing the
//! record's directory, so that its rename survives a crash. When several
//! writers of one directory (redemptions of different claims, say) reach
//! that point together, one fsync of the directory makes all their renames
//! durable: the first runs it, those that arrive meanwhile wait for it to
//! end and then share the next one, which starts after every one of their
//! renames. No writer returns before an fsync that began after its own
//! rename has succeeded, so each write stays exactly as durable as with an
//! fsync of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use skupper_token::store::StoreError;

/// The fsyncs of one directory in this process.
#[derive(Debug, Default)]
struct DirSync {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Syncs asked for so far; each caller's ticket is the count with its
    /// own request.
    asked: u64,
    /// Every ticket up to this one is covered by a sync that succeeded.
    synced: u64,
    /// A sync is running.
    running: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is a few field updates that cannot panic halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn directory(dir: &Path) -> Arc<DirSync> {
    static DIRS: OnceLock<Mutex<HashMap<PathBuf, Arc<DirSync>>>> = OnceLock::new();
    let mut dirs = lock(DIRS.get_or_init(Default::default));
    dirs.entry(dir.to_path_buf()).or_default().clone()
}

/// Makes every change to `dir` made before this call durable: runs `sync`
/// on it, or waits for a run that another caller started after this call
/// began. A failed run is reported to the caller that ran it; those
/// waiting for it run `sync` again themselves.
pub(super) fn sync_shared(
    dir: &Path,
    sync: impl Fn(&Path) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let shared = directory(dir);
    let mut state = lock(&shared.state);
    state.asked += 1;
    let ticket = state.asked;
    loop {
        if state.synced >= ticket {
            return Ok(());
        }
        if !state.running {
            state.running = true;
            // Everyone who asked so far renamed before this run starts.
            let covers = state.asked;
            drop(state);
            let result = sync(dir);
            let mut state = lock(&shared.state);
            state.running = false;
            if result.is_ok() {
                state.synced = state.synced.max(covers);
            }
            drop(state);
            shared.done.notify_all();
            return result;
        }
        state = shared
            .done
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    fn unique_dir(name: &str) -> PathBuf {
        // Only a key here: nothing is created.
        PathBuf::from(format!("/nonexistent/dir-sync-test/{name}"))
    }

    #[test]
    fn a_sync_that_started_before_a_call_does_not_count_for_it() {
        let dir = unique_dir("before");
        let runs = Arc::new(AtomicUsize::new(0));
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let first = {
            let (dir, runs) = (dir.clone(), runs.clone());
            std::thread::spawn(move || {
                sync_shared(&dir, |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started.send(()).unwrap();
                    lock(&released).recv().unwrap();
                    Ok(())
                })
            })
        };
        is_started.recv().unwrap();
        // The first run is under way: this call's change may have come
        // after it began, so it must run (or share) another one.
        let second = {
            let (dir, runs) = (dir.clone(), runs.clone());
            std::thread::spawn(move || {
                sync_shared(&dir, |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the second call waits");
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Ok(()));
        assert_eq!(second.join().unwrap(), Ok(()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn callers_that_arrive_during_a_sync_share_the_next_one() {
        let dir = unique_dir("share");
        let runs = Arc::new(AtomicUsize::new(0));
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let first = {
            let (dir, runs) = (dir.clone(), runs.clone());
            std::thread::spawn(move || {
                sync_shared(&dir, |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started.send(()).unwrap();
                    lock(&released).recv().unwrap();
                    Ok(())
                })
            })
        };
        is_started.recv().unwrap();
        let waiting: Vec<_> = (0..6)
            .map(|_| {
                let (dir, runs) = (dir.clone(), runs.clone());
                std::thread::spawn(move || {
                    sync_shared(&dir, |_| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        // All six have asked (they wait for the first run).
        while lock(&directory(&dir).state).asked < 7 {
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Ok(()));
        for w in waiting {
            assert_eq!(w.join().unwrap(), Ok(()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one run for all six");
    }

    #[test]
    fn a_failed_sync_fails_its_runner_and_the_others_run_their_own() {
        let dir = unique_dir("fail");
        let failure = StoreError::Unavailable {
            reason: "cannot sync directory: I/O error".into(),
        };
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let first = {
            let (dir, failure) = (dir.clone(), failure.clone());
            std::thread::spawn(move || {
                sync_shared(&dir, |_| {
                    started.send(()).unwrap();
                    lock(&released).recv().unwrap();
                    Err(failure.clone())
                })
            })
        };
        is_started.recv().unwrap();
        let second = {
            let dir = dir.clone();
            std::thread::spawn(move || sync_shared(&dir, |_| Ok(())))
        };
        while lock(&directory(&dir).state).asked < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Err(failure));
        assert_eq!(second.join().unwrap(), Ok(()));
    }
}
