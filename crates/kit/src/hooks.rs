//! What a long model call takes from its caller: a flag to stop it between steps and a place to
//! report how far it got. Model crates check the flag between denoising steps, decoder windows,
//! sentences or frames and return their own "cancelled" error; the studio's stages set it from
//! the job's cancellation token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Progress callback: receives the finished fraction of the work (0..=1).
pub type ProgressFn = Arc<dyn Fn(f32) + Send + Sync>;

/// Raised by another thread to stop a model call at its next step.
pub type CancelFlag = Arc<AtomicBool>;

/// Whether `flag` (if any) has been raised.
pub fn is_cancelled(flag: Option<&CancelFlag>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_flag_is_seen_by_every_clone() {
        let f: CancelFlag = Arc::default();
        let g = f.clone();
        assert!(!is_cancelled(Some(&g)));
        assert!(!is_cancelled(None));
        f.store(true, Ordering::Relaxed);
        assert!(is_cancelled(Some(&g)));
    }
}
