//! Which job goes first: higher priority first, a waiting job gains one priority level per
//! `aging` interval (so nothing starves), first come first served within a level.
//!
//! Every job ages at the same rate, so comparing `priority + waited / aging` between two jobs
//! at any moment is the same as comparing `priority × aging − queued_at`: a score that never
//! changes while a job waits. The scheduler keeps jobs ordered by it without re-sorting.

/// The ordering score of a job (higher goes first). Ties: lower job id first.
pub fn score(priority: i64, queued_ms: i64, aging_ms: i64) -> i64 {
    priority
        .saturating_mul(aging_ms.max(1))
        .saturating_sub(queued_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn order(jobs: &[(i64, i64, i64)]) -> Vec<i64> {
        // (id, priority, queued_ms)
        let mut v = jobs.to_vec();
        v.sort_by(|a, b| {
            score(b.1, b.2, MIN)
                .cmp(&score(a.1, a.2, MIN))
                .then(a.0.cmp(&b.0))
        });
        v.into_iter().map(|j| j.0).collect()
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        assert_eq!(order(&[(3, 0, 30), (1, 0, 10), (2, 5, 20)]), [2, 1, 3]);
    }

    #[test]
    fn a_low_priority_job_that_waited_long_enough_overtakes_newer_high_ones() {
        // Job 1 (priority 0) waits since t=0; job 9 (priority 3) arrives 4 minutes later.
        assert_eq!(order(&[(1, 0, 0), (9, 3, 4 * MIN + 1)]), [1, 9]);
        // Arriving after only 2 minutes, the high-priority job still goes first.
        assert_eq!(order(&[(1, 0, 0), (9, 3, 2 * MIN)]), [9, 1]);
    }
}
