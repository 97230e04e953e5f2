//! The server thread: a dedicated OS thread running its own tokio runtime
//! that serves a [`Sim`] until the [`SimServer`] is dropped.

use std::future::IntoFuture;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Sim, routes};

/// A running simulator. Dropping it stops the server and joins its thread.
pub struct SimServer {
    sim: Sim,
    base: String,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl SimServer {
    pub(crate) fn start(sim: Sim) -> SimServer {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("githubsim: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("githubsim: non-blocking listener");
        let addr = listener.local_addr().expect("githubsim: local address");
        let base = format!("http://{addr}");
        let (stop, stopped) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let app = routes::router(sim.clone(), base.clone());
        let thread = std::thread::Builder::new()
            .name("githubsim".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("githubsim-worker")
                    .enable_all()
                    .build()
                    .expect("githubsim: tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("githubsim: tokio listener");
                    let _ = ready_tx.send(());
                    let mut graceful = stopped.clone();
                    let serve = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = graceful.wait_for(|s| *s).await;
                        })
                        .into_future();
                    // Connections still busy (say, in an injected timeout)
                    // get a short grace period, no more.
                    let mut hard = stopped;
                    let deadline = async move {
                        let _ = hard.wait_for(|s| *s).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    };
                    tokio::select! {
                        r = serve => {
                            if let Err(e) = r {
                                tracing::warn!(error = %e, "githubsim: server failed");
                            }
                        }
                        () = deadline => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("githubsim: spawn server thread");
        ready_rx
            .recv()
            .expect("githubsim: server thread died while starting");
        tracing::debug!(%base, "githubsim listening");
        SimServer {
            sim,
            base,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// `base_url()` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The simulator being served.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("base", &self.base)
            .finish()
    }
}
