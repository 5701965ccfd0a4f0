//! The end of a server's life: draining and shutdown hooks.
//!
//! On SIGTERM or ctrl-c `palaver run` stops accepting connections, lets the requests in
//! progress finish (within `--shutdown-timeout`), and then runs the shutdown hooks
//! registered here, in the order they were registered, so that parts which buffer work
//! (an event broker's outgoing queue, a store's connections) can flush it before the
//! process exits. While draining, `/health/ready` answers 503 so that a load balancer
//! stops sending traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Hook = Box<dyn FnOnce() -> HookFuture + Send>;

/// Whether the server is draining, and what to do before it exits.
#[derive(Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    hooks: Mutex<Vec<(String, Hook)>>,
}

impl Lifecycle {
    /// A running server's lifecycle: not draining, no hooks.
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// Registers `hook` to run once at shutdown, after the last request finished.
    /// `name` is used in logs (e.g. `event broker`).
    pub fn on_shutdown<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.into(), hook));
    }

    /// Marks the server as shutting down (readiness then fails).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs every registered hook, one after the other, within `deadline` in all; a hook
    /// still running at the deadline is abandoned with an error in the log. Returns how
    /// many hooks finished.
    pub async fn run_hooks(&self, deadline: Duration) -> usize {
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|p| p.into_inner()));
        let until = Instant::now() + deadline;
        let mut finished = 0;
        for (name, hook) in hooks {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, hook()).await {
                Ok(()) => {
                    finished += 1;
                    tracing::info!(hook = %name, "shutdown hook finished");
                }
                Err(_) => {
                    tracing::error!(hook = %name, "shutdown hook did not finish before the deadline");
                }
            }
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn hooks_run_once_in_order_and_a_hanging_one_is_cut() {
        let life = Lifecycle::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for name in ["broker", "store"] {
            let seen = seen.clone();
            life.on_shutdown(name, move || async move {
                seen.lock().unwrap().push(name);
            });
        }
        life.on_shutdown("stuck", std::future::pending::<()>);
        assert!(!life.is_draining());
        life.start_draining();
        assert!(life.is_draining());
        assert_eq!(life.run_hooks(Duration::from_millis(50)).await, 2);
        assert_eq!(*seen.lock().unwrap(), vec!["broker", "store"]);
        // Hooks run once.
        assert_eq!(life.run_hooks(Duration::from_millis(50)).await, 0);
    }
}
