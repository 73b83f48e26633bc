//! A background task the host owns (a sweeper, a sampler): starting it again replaces the
//! old one, stopping or dropping it aborts it, so none outlives its owner or runs twice.

use std::sync::Mutex;

use tokio::task::JoinHandle;

/// The slot of one background task.
#[derive(Debug, Default)]
pub struct Background(Mutex<Option<JoinHandle<()>>>);

impl Background {
    /// Keeps `task`, aborting the one it replaces.
    pub fn run(&self, task: JoinHandle<()>) {
        if let Some(old) = self.slot().replace(task) {
            old.abort();
        }
    }

    /// Aborts the task, if any.
    pub fn stop(&self) {
        if let Some(task) = self.slot().take() {
            task.abort();
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_task_aborts_the_old_and_stop_aborts_the_last() {
        let slot = Background::default();
        let first = tokio::spawn(std::future::pending::<()>());
        let first_abort = first.abort_handle();
        slot.run(first);
        let second = tokio::spawn(std::future::pending::<()>());
        let second_abort = second.abort_handle();
        slot.run(second);
        tokio::task::yield_now().await;
        assert!(first_abort.is_finished(), "replaced: aborted");
        assert!(!second_abort.is_finished());
        slot.stop();
        tokio::task::yield_now().await;
        assert!(second_abort.is_finished());
    }
}
