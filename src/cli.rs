//! `palaver run`: load the project, open the stores, serve the API.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;

use crate::agent::Agent;
use crate::config::{ConfigError, Endpoints, LogFormat, RunArgs, TrackerStoreConfig};
use crate::processor::Conversations;
use crate::server::auth::{AuthConfig, JwtConfig};
use crate::server::{router, AppState, ProjectSource, RouterOptions};
use crate::stores::lock::InMemoryLockStore;
use crate::stores::memory::InMemoryTrackerStore;
use crate::stores::sqlite::SqliteTrackerStore;
use crate::stores::TrackerStore;

/// Sets up logging: `RUST_LOG` filters (else `default_level`), text or JSON lines.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Builds the application state from the flags: project, endpoints and stores.
pub async fn build_state(args: &RunArgs) -> anyhow::Result<Arc<AppState>> {
    let endpoints = match args.project_file(&args.endpoints) {
        Some(p) => Endpoints::load(&p)?,
        None => Endpoints::default(),
    };
    let started = std::time::Instant::now();
    let agent = Agent::load_project(
        &args.project,
        args.domain.as_deref(),
        args.config.as_deref(),
        &endpoints.raw,
    )?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        model_id = %agent.model_id,
        "project loaded"
    );
    let credentials = credentials(args)?;
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
        callback: crate::channels::callback::endpoint_from_credentials(&credentials),
        project: ProjectSource {
            dir: args.project.clone(),
            endpoints: endpoints.raw.clone(),
        },
    }))
}

/// credentials.yml as parsed (`null` when there is none).
pub fn credentials(args: &RunArgs) -> anyhow::Result<serde_json::Value> {
    Ok(match args.project_file(&args.credentials) {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
            let text = crate::yaml::substitute_env(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
            crate::yaml::parse_str(&text, &p.display().to_string())?
        }
        None => serde_json::Value::Null,
    })
}

/// Which input channels to mount: REST unless credentials.yml exists without `rest:`
/// (as Rasa), callback when credentials.yml has `callback:`.
pub fn channel_options(credentials: &serde_json::Value) -> (bool, bool) {
    match credentials.as_object() {
        None => (true, false),
        Some(c) => (c.contains_key("rest"), c.contains_key("callback")),
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    let (rest_channel, callback_channel) = channel_options(&credentials(&args)?);
    let app = router(
        state,
        &RouterOptions {
            enable_api: args.enable_api,
            cors: args.cors.clone(),
            rest_channel,
            callback_channel,
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

/// `palaver shell`: chat with the project in the terminal. Conversations use the
/// configured tracker store; the conversation id is `--sender` style `shell`.
pub async fn shell(args: RunArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let state = build_state(&args).await?;
    let agent = state
        .agent()
        .map_err(|_| anyhow::anyhow!("no bot is loaded"))?;
    let sender = format!("shell-{}", uuid::Uuid::new_v4().simple());
    println!("Bot loaded. Type a message and press enter (use '/stop' to exit):");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("Your input ->  ");
        let _ = std::io::stdout().flush();
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let text = line.trim();
        if text == "/stop" {
            break;
        }
        if text.is_empty() {
            continue;
        }
        let out = crate::channels::CollectingOutputChannel::named("cmdline");
        let msg = crate::processor::messages::UserMessage {
            text: Some(text.to_owned()),
            sender_id: sender.clone(),
            input_channel: Some("cmdline".into()),
            ..Default::default()
        };
        crate::processor::messages::handle_message(&state.conversations, agent.clone(), msg, &out)
            .await?;
        for m in out.take() {
            if let Some(t) = m.get("text").and_then(serde_json::Value::as_str) {
                println!("{t}");
            }
            if let Some(buttons) = m.get("buttons").and_then(serde_json::Value::as_array) {
                for (i, b) in buttons.iter().enumerate() {
                    println!(
                        "  {}: {} ({})",
                        i + 1,
                        b["title"].as_str().unwrap_or_default(),
                        b["payload"].as_str().unwrap_or_default()
                    );
                }
            }
            for key in ["image", "attachment", "custom"] {
                if let Some(v) = m.get(key) {
                    println!("{key}: {v}");
                }
            }
        }
    }
    Ok(())
}

/// `palaver data validate`: prints every problem; `Ok(false)` when there are errors.
pub fn validate(
    project: &std::path::Path,
    domain: Option<&std::path::Path>,
    data: Option<&std::path::Path>,
) -> anyhow::Result<bool> {
    use crate::training_data::validate::{validate_project, IssueLevel};
    let domain_path = match domain {
        Some(d) => d.to_path_buf(),
        None => crate::agent::find_domain(project).ok_or_else(|| {
            ConfigError(format!(
                "no domain.yml (or domain/ folder) in {}",
                project.display()
            ))
        })?,
    };
    let domain = crate::domain::Domain::load(&domain_path)?;
    let data_dir = data
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| project.join("data"));
    let data = crate::training_data::load(&data_dir)?;
    let issues = validate_project(&domain, &data);
    let mut errors = 0;
    for issue in &issues {
        let level = match issue.level {
            IssueLevel::Error => {
                errors += 1;
                "error"
            }
            _ => "warning",
        };
        match &issue.location {
            Some(at) => println!("{level}: {at}: {}", issue.message),
            None => println!("{level}: {}", issue.message),
        }
    }
    println!("{} error(s), {} warning(s)", errors, issues.len() - errors);
    Ok(errors == 0)
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
