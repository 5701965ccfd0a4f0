//! `palaver run`: load the project, open the stores, serve the API.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;

use crate::agent::Agent;
use crate::config::{ConfigError, Endpoints, LogFormat, RunArgs, TrackerStoreConfig};
use crate::processor::Conversations;
use crate::server::auth::{AuthConfig, JwtConfig};
use crate::server::{router, AppState, RouterOptions};
use crate::stores::lock::InMemoryLockStore;
use crate::stores::memory::InMemoryTrackerStore;
use crate::stores::sqlite::SqliteTrackerStore;
use crate::stores::TrackerStore;

/// Sets up logging: `RUST_LOG` filters (default `info`), text or JSON lines.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Builds the application state from the flags: project, endpoints and stores.
pub async fn build_state(args: &RunArgs) -> anyhow::Result<Arc<AppState>> {
    let agent = Agent::load(
        &args.project,
        args.domain.as_deref(),
        args.config.as_deref(),
    )?;
    let endpoints = match args.project_file(&args.endpoints) {
        Some(p) => Endpoints::load(&p)?,
        None => Endpoints::default(),
    };
    let store: Arc<dyn TrackerStore> = match &endpoints.tracker_store {
        TrackerStoreConfig::InMemory => Arc::new(InMemoryTrackerStore::new()),
        TrackerStoreConfig::Sqlite(path) => {
            Arc::new(SqliteTrackerStore::open(path).await.map_err(|e| {
                ConfigError(format!(
                    "cannot open the SQLite tracker store {}: {e}",
                    path.display()
                ))
            })?)
        }
    };
    tracing::info!(store = ?endpoints.tracker_store, "tracker store ready");
    let jwt = match &args.jwt_secret {
        Some(secret) => Some(JwtConfig::new(secret, &args.jwt_method).map_err(ConfigError)?),
        None => None,
    };
    Ok(Arc::new(AppState {
        agent: RwLock::new(Some(Arc::new(agent))),
        conversations: Conversations::new(
            store,
            Arc::new(InMemoryLockStore::new()),
            args.tracker_cache_size,
        ),
        auth: AuthConfig {
            token: args.auth_token.clone(),
            jwt,
        },
        body_limit: args.max_body_size,
    }))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    let app = router(
        state,
        &RouterOptions {
            enable_api: args.enable_api,
            cors: args.cors.clone(),
        },
    );
    let addr: SocketAddr = format!("{}:{}", args.interface, args.port)
        .parse()
        .map_err(|e| ConfigError(format!("--interface/--port: {e}")))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, project = %args.project.display(), "Rasa server is up and running.");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
