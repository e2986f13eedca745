//! Live alert events for watchers. Every replica follows the `alert_events` log (written in the
//! same transactions as the alert changes) and fans new events out to its own SSE clients
//! through a broadcast channel. A slow client lags behind on its own receiver and is dropped; it
//! never holds up the others.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;

use crate::state::AppState;
use crate::store;

/// How far back each poll looks, so events that commit late are still seen once.
const WINDOW_MS: i64 = 10_000;

pub use hub::{AlertEvent, EventHub};

pub mod hub;

/// Follows the event log until the task is dropped.
pub async fn run(state: web::Data<AppState>) {
    // Events from before this process started are history, not news.
    let mut cursor = loop {
        match state
            .store
            .read(|conn| Ok(store::events::max_seq(conn)?))
            .await
        {
            Ok(max) => break max.unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alert events; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut gaps = Gaps::default();
    let mut last_prune = state.clock.now_ms();
    loop {
        let now = state.clock.now_ms();
        let waiting = gaps.list();
        match state
            .store
            .read(move |conn| Ok(store::events::after(conn, cursor, &waiting, BATCH)?))
            .await
        {
            Ok(rows) => {
                for row in rows {
                    if row.seq > cursor {
                        gaps.skipped(cursor, row.seq, now);
                        cursor = row.seq;
                    } else {
                        gaps.filled(row.seq);
                    }
                    if state.watch.sender.receiver_count() > 0 {
                        let _ = state.watch.sender.send(AlertEvent {
                            event: row.event,
                            alert_id: row.alert_id,
                            org_id: row.org_id,
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read alert events"),
        }
        gaps.expire(now);
        if now - last_prune > 3_600_000 {
            last_prune = now;
            let before = now - 24 * 3_600_000;
            let _ = state
                .store
                .write(move |conn| Ok(store::events::prune(conn, before)?))
                .await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = state.watch.wake.notified() => {}
        }
    }
}

/// Most events read per poll.
const BATCH: i64 = 10_000;
/// Most skipped sequence numbers followed at once (beyond that, the oldest are given up).
const MAX_GAPS: usize = 10_000;

/// Sequence numbers skipped by the cursor. On PostgreSQL a transaction can take a sequence
/// number, and commit after one that took a higher number has been read; the watcher asks for
/// such numbers again until they appear or `WINDOW_MS` has passed (a rolled-back transaction
/// leaves a gap for ever). On SQLite, with its single writer, there are none.
#[derive(Default)]
struct Gaps {
    /// seq → when it was first missed.
    missing: HashMap<i64, i64>,
}

impl Gaps {
    fn skipped(&mut self, cursor: i64, next: i64, now: i64) {
        let from = (cursor + 1).max(next - MAX_GAPS as i64);
        for seq in from..next {
            if self.missing.len() >= MAX_GAPS {
                break;
            }
            self.missing.insert(seq, now);
        }
    }

    fn filled(&mut self, seq: i64) {
        self.missing.remove(&seq);
    }

    fn expire(&mut self, now: i64) {
        self.missing.retain(|_, at| now - *at < WINDOW_MS);
    }

    fn list(&self) -> Vec<i64> {
        self.missing.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_followed_until_filled_or_too_old() {
        let mut gaps = Gaps::default();
        gaps.skipped(10, 11, 0);
        assert!(gaps.list().is_empty(), "consecutive numbers leave no gap");
        gaps.skipped(11, 14, 0);
        let mut waiting = gaps.list();
        waiting.sort_unstable();
        assert_eq!(waiting, vec![12, 13]);
        gaps.filled(12);
        assert_eq!(gaps.list(), vec![13]);
        gaps.expire(WINDOW_MS - 1);
        assert_eq!(gaps.list(), vec![13]);
        gaps.expire(WINDOW_MS);
        assert!(
            gaps.list().is_empty(),
            "a gap older than the window is given up"
        );
    }

    #[test]
    fn a_huge_jump_tracks_a_bounded_number_of_gaps() {
        let mut gaps = Gaps::default();
        gaps.skipped(0, 1_000_000, 0);
        assert_eq!(gaps.list().len(), MAX_GAPS);
        assert!(gaps
            .list()
            .iter()
            .all(|s| *s >= 1_000_000 - MAX_GAPS as i64));
    }
}
