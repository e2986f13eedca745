//! Argon2id hashing for passwords, PINs and recovery codes.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::AppError;

pub fn hash(secret: &str) -> Result<String, AppError> {
    with_slot(|| {
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(format!("password hashing failed: {e}")))
    })
}

/// False for a wrong secret and for a malformed stored hash alike.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    with_slot(|| {
        Argon2::default()
            .verify_password(secret.as_bytes(), stored_hash)
            .is_ok()
    })
}

/// Argon2 computations running at once in this process: at most one per core. Each holds
/// 19 MiB (Argon2id's default memory cost) and a core for tens of milliseconds, so more at
/// once finish no sooner; unbounded, a burst of logins held 19 MiB each (32 at once took
/// the server from 50 to 250 MB, which the allocator then kept), and a flood of them could
/// exhaust memory. The callers run on blocking threads, so waiting here blocks nothing async.
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        busy: Mutex::new(0),
        freed: Condvar::new(),
        max: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    })
}

/// Gives the slot back even if the computation panics.
struct SlotGuard(&'static Slots);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(PoisonError::into_inner);
        *busy = busy.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

fn with_slot<T>(f: impl FnOnce() -> T) -> T {
    with_slot_of(slots(), f)
}

fn with_slot_of<T>(slots: &'static Slots, f: impl FnOnce() -> T) -> T {
    let mut busy = slots.busy.lock().unwrap_or_else(PoisonError::into_inner);
    while *busy >= slots.max {
        busy = slots
            .freed
            .wait(busy)
            .unwrap_or_else(PoisonError::into_inner);
    }
    *busy += 1;
    drop(busy);
    let _guard = SlotGuard(slots);
    f()
}

/// Verifies against a fixed hash so that a login for an unknown email costs the same time as
/// one with a wrong password: the two must be indistinguishable.
pub fn verify_against_dummy(secret: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("doorstep-dummy-password").ok()) {
        let _ = verify(secret, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn no_more_computations_at_once_than_cores() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        // Its own slots: other tests hash passwords at the same time with the process's.
        let slots: &'static Slots = Box::leak(Box::new(Slots {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            max: 2,
        }));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    with_slot_of(slots, || {
                        let now = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                        PEAK.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        NOW.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            PEAK.load(Ordering::SeqCst),
            2,
            "never more than two at once"
        );
        // A panic inside gives its slot back.
        let _ = std::panic::catch_unwind(|| with_slot_of(slots, || panic!("inside")));
        assert_eq!(*slots.busy.lock().unwrap(), 0);
    }
}
