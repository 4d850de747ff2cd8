//! Which ready task runs next: higher priority first, a waiting job gains one priority level
//! per `aging` interval (so nothing starves), and first come first served within a level.

use std::cmp::Ordering;

/// A task that could start now.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub job: i64,
    pub priority: i64,
    /// When the job (re-)entered the queue, ms since the epoch.
    pub queued_ms: i64,
    /// The node's position in its job's topological order.
    pub order: usize,
}

/// The effective priority at `now_ms` with one level gained per `aging_ms` of waiting.
pub fn effective(c: &Candidate, now_ms: i64, aging_ms: i64) -> i64 {
    let waited = (now_ms - c.queued_ms).max(0);
    c.priority + if aging_ms > 0 { waited / aging_ms } else { 0 }
}

/// Sorts candidates best first.
pub fn order(cands: &mut [Candidate], now_ms: i64, aging_ms: i64) {
    cands.sort_by(|a, b| {
        effective(b, now_ms, aging_ms)
            .cmp(&effective(a, now_ms, aging_ms))
            .then_with(|| a.queued_ms.cmp(&b.queued_ms))
            .then_with(|| a.job.cmp(&b.job))
            .then_with(|| a.order.cmp(&b.order))
            .then(Ordering::Equal)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(job: i64, priority: i64, queued_ms: i64) -> Candidate {
        Candidate {
            job,
            priority,
            queued_ms,
            order: 0,
        }
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut v = vec![c(3, 0, 30), c(1, 0, 10), c(2, 5, 20)];
        order(&mut v, 40, 60_000);
        assert_eq!(v.iter().map(|c| c.job).collect::<Vec<_>>(), [2, 1, 3]);
    }

    #[test]
    fn a_low_priority_job_that_waited_long_enough_overtakes_newer_high_ones() {
        // Job 1 (priority 0) queued at t=0; a stream of priority-3 jobs keeps arriving.
        let aging = 60_000;
        let now = 4 * aging + 1;
        let mut v = vec![c(1, 0, 0), c(9, 3, now - 10)];
        order(&mut v, now, aging);
        assert_eq!(v[0].job, 1, "aging must prevent starvation");
        // Before it has aged enough, the high-priority job goes first.
        let mut v = vec![c(1, 0, 0), c(9, 3, 10)];
        order(&mut v, 2 * aging, aging);
        assert_eq!(v[0].job, 9);
    }
}
