//! `palaver run`: load the project, open the stores, serve the API.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;

use crate::agent::Agent;
use crate::brokers::pika::PikaEventBroker;
use crate::brokers::sql::SqlEventBroker;
use crate::brokers::{EventBroker, EventPublisher, PublishingTrackerStore};
use crate::config::{
    ConfigError, Endpoints, EventBrokerConfig, LockStoreConfig, LogFormat, RunArgs,
    TrackerStoreConfig,
};

/// Events that may wait for the event broker (about a few hundred bytes each); past
/// that, new events are dropped and counted rather than filling memory.
const BROKER_QUEUE: usize = 100_000;
use crate::processor::Conversations;
use crate::server::auth::{AuthConfig, JwtConfig};
use crate::server::{router, AppState, ProjectSource, RouterOptions};
use crate::stores::instrumented::{InstrumentedLockStore, InstrumentedTrackerStore};
use crate::stores::lock::InMemoryLockStore;
use crate::stores::memory::InMemoryTrackerStore;
use crate::stores::postgres::PostgresTrackerStore;
use crate::stores::redis::RedisTrackerStore;
use crate::stores::redis_lock::RedisLockStore;
use crate::stores::sqlite::SqliteTrackerStore;
use crate::stores::{LockStore, TrackerStore};

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
    if !args.project.is_dir() {
        return Err(ConfigError(format!(
            "the project folder '{}' does not exist; create a starter bot there with \
             `palaver init {}`",
            args.project.display(),
            args.project.display()
        ))
        .into());
    }
    let endpoints = match args.project_file(&args.endpoints) {
        Some(p) => Endpoints::load(&p)?,
        None if args.endpoints != std::path::Path::new("endpoints.yml") => {
            return Err(missing_file("--endpoints", &args.endpoints).into())
        }
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
    let socketio = match crate::channels::socketio::SocketIoConfig::from_credentials(&credentials)?
    {
        None => None,
        Some(config) => {
            // With replicas (Redis locks), socket.io pushes are relayed between them.
            let relay = match &endpoints.lock_store {
                LockStoreConfig::Redis { redis, .. } => Some(Arc::new(
                    crate::channels::relay::SocketIoRelay::new(redis)
                        .map_err(|e| ConfigError(format!("lock_store (socket.io relay): {e}")))?,
                )),
                LockStoreConfig::InMemory => None,
            };
            Some(crate::channels::socketio::SocketIoChannel::with_relay(
                config, relay,
            ))
        }
    };
    let channel_auth = crate::channels::auth::ChannelAuth::from_credentials(&credentials)?;
    let callback = crate::channels::callback::endpoint_from_credentials(&credentials);
    // The PostgreSQL tracker store's pool, shared with the reminders.
    let mut pg_pool = None;
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
        TrackerStoreConfig::Postgres(cfg) => {
            let pg = PostgresTrackerStore::connect(cfg).await.map_err(|e| {
                ConfigError(format!("cannot open the PostgreSQL tracker store: {e}"))
            })?;
            pg_pool = Some(pg.pool().clone());
            Arc::new(pg)
        }
        TrackerStoreConfig::Redis(cfg) => Arc::new(
            RedisTrackerStore::new(cfg).map_err(|e| ConfigError(format!("tracker_store: {e}")))?,
        ),
    };
    let locks: Arc<dyn LockStore> = match &endpoints.lock_store {
        LockStoreConfig::InMemory => Arc::new(InMemoryLockStore::new()),
        LockStoreConfig::Redis {
            redis,
            lock_lifetime,
        } => Arc::new(
            RedisLockStore::new(redis, std::time::Duration::from_secs_f64(*lock_lifetime))
                .map_err(|e| ConfigError(format!("lock_store: {e}")))?,
        ),
    };
    if let Err(e) = locks.ping().await {
        tracing::warn!(error = %e, "the lock store cannot be reached yet");
    }
    tracing::info!(lock_store = ?endpoints.lock_store, "lock store ready");
    let lifecycle = Arc::new(crate::shutdown::Lifecycle::new());
    let store = match &endpoints.event_broker {
        None => store,
        Some(cfg) => {
            let broker: Arc<dyn EventBroker> = match cfg {
                EventBrokerConfig::Pika(pika) => Arc::new(PikaEventBroker::new(pika.clone())),
                EventBrokerConfig::Sql(sql) => {
                    Arc::new(SqlEventBroker::connect(sql).await.map_err(|e| {
                        ConfigError(format!("event_broker: cannot open the SQL broker: {e}"))
                    })?)
                }
            };
            tracing::info!(event_broker = ?cfg, "event broker ready");
            let publisher = EventPublisher::start(broker, BROKER_QUEUE);
            let flushed = publisher.clone();
            lifecycle.on_shutdown("event broker", move || async move { flushed.flush().await });
            PublishingTrackerStore::wrap(store, publisher)
        }
    };
    // A shared store may be changed by other processes (a shared lock store says there
    // are others): read the store on every request.
    let cache_size = if endpoints.tracker_store.is_shared()
        || endpoints.lock_store != LockStoreConfig::InMemory
    {
        0
    } else {
        args.tracker_cache_size
    };
    tracing::info!(store = ?endpoints.tracker_store, "tracker store ready");
    // Reminders live next to the conversations: in the same SQLite file, PostgreSQL
    // database or Redis server, or in memory.
    let reminders = match &endpoints.tracker_store {
        TrackerStoreConfig::InMemory => crate::reminders::Reminders::in_memory(),
        TrackerStoreConfig::Sqlite(path) => crate::reminders::Reminders::new(Arc::new(
            crate::reminders::sqlite::SqliteReminderStore::open(path)
                .await
                .map_err(|e| {
                    ConfigError(format!(
                        "cannot open the reminders in SQLite {}: {e}",
                        path.display()
                    ))
                })?,
        )),
        TrackerStoreConfig::Postgres(_) => match pg_pool {
            Some(pool) => crate::reminders::Reminders::new(Arc::new(
                crate::reminders::postgres::PostgresReminderStore::new(pool)
                    .await
                    .map_err(|e| {
                        ConfigError(format!("cannot open the reminders in PostgreSQL: {e}"))
                    })?,
            )),
            None => crate::reminders::Reminders::in_memory(),
        },
        TrackerStoreConfig::Redis(cfg) => crate::reminders::Reminders::new(Arc::new(
            crate::reminders::redis::RedisReminderStore::new(
                crate::stores::redis::connect(&cfg.redis)
                    .map_err(|e| ConfigError(format!("tracker_store: {e}")))?,
                crate::stores::redis::key_prefix(&cfg.redis, "palaver_reminders:"),
            ),
        )),
    };
    let jwt = match &args.jwt_secret {
        Some(secret) => Some(JwtConfig::new(secret, &args.jwt_method).map_err(ConfigError)?),
        None => None,
    };
    Ok(Arc::new(AppState {
        agent: RwLock::new(Some(Arc::new(agent))),
        conversations: Conversations::new(
            InstrumentedTrackerStore::wrap(store),
            InstrumentedLockStore::wrap(locks),
            cache_size,
        )
        .with_reminders(Arc::new(reminders)),
        auth: AuthConfig {
            token: args.auth_token.clone(),
            jwt,
        },
        body_limit: args.max_body_size,
        callback: callback.clone(),
        project: ProjectSource {
            dir: args.project.clone(),
            endpoints: endpoints.raw.clone(),
        },
        lifecycle,
        push: crate::channels::push::PushChannels::new(
            socketio.as_ref().map(|s| s.output()),
            callback,
        ),
        socketio,
        channel_auth,
    }))
}

/// A file named by a flag that is neither where it was given nor in the project.
fn missing_file(flag: &str, path: &std::path::Path) -> ConfigError {
    ConfigError(format!(
        "{flag} {}: no such file (looked for it as given and inside the project folder)",
        path.display()
    ))
}

/// credentials.yml as parsed (`null` when there is none).
pub fn credentials(args: &RunArgs) -> anyhow::Result<serde_json::Value> {
    Ok(match args.project_file(&args.credentials) {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
            let text = crate::yaml::substitute_env(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
            let parsed = crate::yaml::parse_str(&text, &p.display().to_string())?;
            check_credentials(&parsed)
                .map_err(|e| ConfigError(format!("{}: {}", p.display(), e.0)))?;
            parsed
        }
        None if args.credentials != std::path::Path::new("credentials.yml") => {
            return Err(missing_file("--credentials", &args.credentials).into())
        }
        None => serde_json::Value::Null,
    })
}

/// Input channels palaver serves; others in credentials.yml are ignored with a warning.
const KNOWN_CHANNELS: &[&str] = &["rest", "callback", "socketio"];

/// Checks the shape of credentials.yml: a mapping of channel names to settings, a
/// `callback` channel with a `url`; warns about channels palaver does not serve.
fn check_credentials(credentials: &serde_json::Value) -> Result<(), ConfigError> {
    let channels = match credentials {
        serde_json::Value::Null => return Ok(()),
        serde_json::Value::Object(m) => m,
        _ => {
            return Err(ConfigError(
                "must be a mapping of channel names to their settings, e.g. `rest:`".into(),
            ))
        }
    };
    for (name, settings) in channels {
        if name == "callback" && settings.get("url").and_then(|u| u.as_str()).is_none() {
            return Err(ConfigError(
                "the callback channel needs a 'url': where palaver POSTs the bot's messages".into(),
            ));
        }
        if !KNOWN_CHANNELS.contains(&name.as_str()) {
            tracing::warn!(
                channel = %name,
                "credentials.yml: palaver does not serve this channel; it is ignored"
            );
        }
    }
    Ok(())
}

/// Which input channels to mount: REST unless credentials.yml exists without `rest:`
/// (as Rasa), callback when credentials.yml has `callback:`.
pub fn channel_options(credentials: &serde_json::Value) -> (bool, bool) {
    match credentials.as_object() {
        None => (true, false),
        Some(c) => (c.contains_key("rest"), c.contains_key("callback")),
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully (see
/// [`serve_until_shutdown`]).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.metrics || args.metrics_port.is_some() {
        crate::server::metrics::install()?;
    }
    let state = build_state(&args).await?;
    crate::reminders::scheduler::Scheduler::start(
        state.clone(),
        crate::reminders::scheduler::SchedulerConfig::from_env(),
    );
    let (rest_channel, callback_channel) = channel_options(&credentials(&args)?);
    let app = router(
        state.clone(),
        &RouterOptions {
            enable_api: args.enable_api,
            cors: args.cors.clone(),
            rest_channel,
            callback_channel,
            metrics: args.metrics,
        },
    );
    let addr: SocketAddr = format!("{}:{}", args.interface, args.port)
        .parse()
        .map_err(|e| ConfigError(format!("--interface/--port: {e}")))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    if let Some(port) = args.metrics_port {
        serve_metrics(&args.interface, port).await?;
    }
    tracing::info!(%local, project = %args.project.display(), "Rasa server is up and running.");
    let deadline = std::time::Duration::from_secs_f64(args.shutdown_timeout);
    serve_until_shutdown(listener, app, &state.lifecycle, shutdown_signal(), deadline).await
}

/// Serves `/metrics` alone on its own port (`--metrics-port`), until the process ends.
async fn serve_metrics(interface: &str, port: u16) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{interface}:{port}")
        .parse()
        .map_err(|e| ConfigError(format!("--interface/--metrics-port: {e}")))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {addr} for metrics: {e}")))?;
    tracing::info!(%addr, "metrics at /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::server::metrics::router()).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Serves `app` until `signal` completes, then shuts down gracefully: stop accepting
/// connections, let the requests in progress finish (at most `deadline`; those still
/// running then are cut off with an error in the log), run the shutdown hooks (again
/// at most `deadline`), return.
pub async fn serve_until_shutdown(
    listener: TcpListener,
    app: axum::Router,
    lifecycle: &Arc<crate::shutdown::Lifecycle>,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    deadline: std::time::Duration,
) -> anyhow::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let life = lifecycle.clone();
    let signal = async move {
        signal.await;
        life.start_draining();
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let cut_off = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        _ = cut_off => tracing::error!(
            deadline_s = deadline.as_secs_f64(),
            "requests still running at the shutdown deadline were cut off"
        ),
    }
    let finished = lifecycle.run_hooks(deadline).await;
    tracing::info!(hooks = finished, "shut down");
    Ok(())
}

/// `palaver health`: GETs `url` (default: this host's `/health/live` on `PALAVER_PORT`
/// or 5005) and says whether it answered 2xx within 5 s.
pub async fn health_check(url: Option<String>) -> bool {
    let url = url.unwrap_or_else(|| {
        let port = std::env::var("PALAVER_PORT").unwrap_or_else(|_| "5005".into());
        format!("http://127.0.0.1:{port}/health/live")
    });
    let client = reqwest::Client::new();
    match client
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            println!("{url}: {}", r.status());
            true
        }
        Ok(r) => {
            eprintln!("{url}: {}", r.status());
            false
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            false
        }
    }
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
    let mut domain = crate::domain::Domain::load(&domain_path)?;
    let data_dir = data
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| project.join("data"));
    let mut data = crate::training_data::load(&data_dir)?;
    // Rasa validates the importer's domain, which knows the retrieval intents.
    crate::agent::merge_retrieval_data(&mut domain, &mut data);
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

/// `palaver test nlu`: trains the project's NLU pipeline and prints the evaluation
/// on `--nlu` (table on stdout, JSON with `--json`).
pub fn test_nlu(args: &crate::config::TestNluArgs) -> anyhow::Result<()> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| args.project.join("config.yml"));
    let config = if config_path.exists() {
        crate::yaml::read_file(&config_path)?
    } else {
        serde_json::Value::Null
    };
    let data_path = args
        .data
        .clone()
        .unwrap_or_else(|| args.project.join("data"));
    let mut train = read_nlu_data(&data_path)?;
    // The response selector reports the domain's retrieval responses too (as `rasa
    // train` merges them); a project without a readable domain just has none.
    if let Some(domain) =
        crate::agent::find_domain(&args.project).and_then(|p| crate::domain::Domain::load(&p).ok())
    {
        for (k, v) in &domain.responses {
            if k.contains(crate::nlu::selector::RESPONSE_IDENTIFIER_DELIMITER) {
                train.responses.insert(k.clone(), v.clone());
            }
        }
    }
    let test = read_nlu_data(&args.nlu)?;
    if test.examples.is_empty() {
        return Err(ConfigError(format!(
            "{}: no NLU examples to test on",
            args.nlu.display()
        ))
        .into());
    }
    let nothing = || {
        ConfigError(format!(
            "nothing to evaluate: the pipeline of {} is empty or {} has no NLU examples",
            config_path.display(),
            data_path.display()
        ))
    };
    let mut pipeline = crate::nlu::pipeline::from_config(&config).ok_or_else(nothing)?;
    if let (Some(folds), Some(oos)) = (args.folds.filter(|f| *f > 1), &args.out_of_scope) {
        let choice = crate::nlu::evaluate::pick_threshold(
            &pipeline,
            &train,
            folds,
            oos,
            args.min_oos_recall,
        )
        .ok_or_else(nothing)?;
        println!(
            "cross-validation on the training data ({} folds, {:.1} s): fallback threshold {:.2} \
             (held-out in-scope accuracy {:.2}%, out-of-scope recall {:.2}%)",
            choice.folds,
            choice.seconds,
            choice.threshold,
            choice.cv_in_scope_accuracy * 100.0,
            choice.cv_out_of_scope_recall * 100.0
        );
        let ambiguity = pipeline.fallback.map_or(0.0, |f| f.ambiguity_threshold);
        pipeline.fallback = Some(crate::nlu::fallback::FallbackConfig {
            threshold: choice.threshold,
            ambiguity_threshold: ambiguity,
        });
    }
    let model = crate::nlu::NluModel::train_pipeline(pipeline, &train).ok_or_else(nothing)?;
    let report = crate::nlu::evaluate::evaluate(&model, &test, args.out_of_scope.as_deref());
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("\nreport written to {}", path.display());
    }
    Ok(())
}

/// NLU data of a YAML file, or of every YAML file under a folder (test files included).
fn read_nlu_data(path: &std::path::Path) -> anyhow::Result<crate::training_data::NluData> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                    files.push(p);
                }
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut data = crate::training_data::TrainingData::default();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| ConfigError(format!("{}: {e}", f.display())))?;
        data.add_file(&f.display().to_string(), &text)?;
    }
    Ok(data.nlu)
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
