//! How much an adapter may log: lines and bytes per step and per operation,
//! for the `log` import and WASI stdout/stderr together. What is over the
//! budget is dropped and counted, and the operation ends with one summary
//! line saying how much was dropped.
//!
//! Without a cap one API call made an adapter write 330 MiB to the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest adapter log line kept; longer ones are cut and marked.
pub(crate) const MAX_LINE_BYTES: usize = 4096;
/// Lines and bytes one step may log.
pub(crate) const STEP_LINES: usize = 200;
pub(crate) const STEP_BYTES: usize = 64 * 1024;
/// Lines and bytes one operation may log over all its steps. Each step
/// replays the ones before it, so this is a few steps' worth rather than
/// `max_steps` times the step budget.
pub(crate) const OPERATION_LINES: usize = 800;
pub(crate) const OPERATION_BYTES: usize = 256 * 1024;

/// What one operation has logged and dropped, shared by its steps.
#[derive(Debug, Default)]
pub(crate) struct OperationLog {
    lines: AtomicUsize,
    bytes: AtomicUsize,
    dropped_lines: AtomicUsize,
    dropped_bytes: AtomicUsize,
}

impl OperationLog {
    /// `(lines, bytes)` dropped so far.
    pub(crate) fn dropped(&self) -> (usize, usize) {
        (
            self.dropped_lines.load(Ordering::Relaxed),
            self.dropped_bytes.load(Ordering::Relaxed),
        )
    }

    /// A copy of these counts for a step that may be abandoned: it counts
    /// against the copy, which [`adopt`](Self::adopt) makes the operation's.
    /// The steps of one operation run one after another, so nothing else
    /// counts here in between.
    pub(crate) fn tentative(&self) -> Self {
        let copy = |n: &AtomicUsize| AtomicUsize::new(n.load(Ordering::Relaxed));
        Self {
            lines: copy(&self.lines),
            bytes: copy(&self.bytes),
            dropped_lines: copy(&self.dropped_lines),
            dropped_bytes: copy(&self.dropped_bytes),
        }
    }

    /// Takes the counts of a [`tentative`](Self::tentative) copy.
    pub(crate) fn adopt(&self, tentative: &Self) {
        for (mine, theirs) in [
            (&self.lines, &tentative.lines),
            (&self.bytes, &tentative.bytes),
            (&self.dropped_lines, &tentative.dropped_lines),
            (&self.dropped_bytes, &tentative.dropped_bytes),
        ] {
            mine.store(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// One step's share of the budget.
#[derive(Debug)]
pub(crate) struct LogBudget {
    operation: Arc<OperationLog>,
    lines: usize,
    bytes: usize,
}

impl LogBudget {
    pub(crate) fn new(operation: Arc<OperationLog>) -> Self {
        Self {
            operation,
            lines: 0,
            bytes: 0,
        }
    }

    /// Whether another line could still be admitted (checked before a line
    /// is masked, so that a flood costs no masking work).
    pub(crate) fn has_room(&self) -> bool {
        self.lines < STEP_LINES
            && self.bytes < STEP_BYTES
            && self.operation.lines.load(Ordering::Relaxed) < OPERATION_LINES
            && self.operation.bytes.load(Ordering::Relaxed) < OPERATION_BYTES
    }

    /// Admits a line of `len` bytes, or counts it as dropped.
    pub(crate) fn admit(&mut self, len: usize) -> bool {
        let op = &self.operation;
        let fits = self.lines < STEP_LINES
            && self.bytes + len <= STEP_BYTES
            && op.lines.load(Ordering::Relaxed) < OPERATION_LINES
            && op.bytes.load(Ordering::Relaxed) + len <= OPERATION_BYTES;
        if fits {
            self.lines += 1;
            self.bytes += len;
            op.lines.fetch_add(1, Ordering::Relaxed);
            op.bytes.fetch_add(len, Ordering::Relaxed);
        } else {
            self.drop_line(len);
        }
        fits
    }

    pub(crate) fn drop_line(&mut self, len: usize) {
        self.operation.dropped_lines.fetch_add(1, Ordering::Relaxed);
        self.operation
            .dropped_bytes
            .fetch_add(len, Ordering::Relaxed);
    }
}

/// `message` cut to [`MAX_LINE_BYTES`] at a character boundary, marked.
pub(crate) fn truncate_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_LINE_BYTES {
        return message.into();
    }
    let mut cut = MAX_LINE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} [truncated]", &message[..cut]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_and_operation_budgets_both_hold() {
        let op = Arc::new(OperationLog::default());
        let mut admitted = 0;
        for _ in 0..5 {
            let mut step = LogBudget::new(op.clone());
            for _ in 0..1000 {
                admitted += usize::from(step.admit(10));
            }
        }
        // 200 per step, 800 per operation.
        assert_eq!(admitted, OPERATION_LINES);
        assert_eq!(
            op.dropped(),
            (5000 - OPERATION_LINES, (5000 - OPERATION_LINES) * 10)
        );

        let mut bytes = LogBudget::new(Arc::new(OperationLog::default()));
        assert!(bytes.admit(STEP_BYTES - 1));
        assert!(!bytes.admit(2));
        assert!(bytes.admit(1));
        assert!(!bytes.has_room());
    }

    #[test]
    fn a_tentative_step_counts_only_once_adopted() {
        let op = Arc::new(OperationLog::default());
        LogBudget::new(op.clone()).admit(10);
        let abandoned = Arc::new(op.tentative());
        let mut step = LogBudget::new(abandoned.clone());
        for _ in 0..STEP_LINES + 5 {
            step.admit(10);
        }
        assert_eq!(abandoned.dropped(), (5, 50));
        assert_eq!(op.dropped(), (0, 0), "an abandoned attempt counts nothing");

        let kept = Arc::new(op.tentative());
        let mut step = LogBudget::new(kept.clone());
        for _ in 0..OPERATION_LINES {
            step.admit(10);
        }
        op.adopt(&kept);
        assert_eq!(
            op.dropped(),
            (
                OPERATION_LINES - STEP_LINES,
                10 * (OPERATION_LINES - STEP_LINES)
            )
        );
        // The operation's budget now holds the first line and the kept step's.
        assert_eq!(op.lines.load(Ordering::Relaxed), 1 + STEP_LINES);
        assert_eq!(op.bytes.load(Ordering::Relaxed), 10 * (1 + STEP_LINES));
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let line = "é".repeat(MAX_LINE_BYTES);
        let cut = truncate_line(&line);
        assert!(cut.ends_with(" [truncated]"));
        assert!(cut.len() <= MAX_LINE_BYTES + " [truncated]".len());
        assert_eq!(truncate_line("short"), "short");
    }
}
