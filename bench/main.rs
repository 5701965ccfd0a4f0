//! `palaver-bench`: a load generator for the conversation API.
//!
//! It starts the real `palaver` server (the binary next to this one) as a child
//! process, once per tracker store (SQLite, in-memory), drives a few HTTP scenarios
//! against it at fixed concurrency levels for a fixed time, and prints a table of
//! throughput and latency. It is a measuring tool, not a test: nothing is asserted.
//!
//! The modules below, in order of use: [`args`] (command line), [`machine`] (what the
//! figures were measured on), [`workdir`] (temp dir and the Rasa project),
//! [`server`] (the child process), [`scenario`] (what is requested), [`load`]
//! (clients and histograms) and [`report`] (table and JSON).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use args::{Args, Store};
use report::Row;

mod action_server;
mod reminders;

/// Command-line flags.
mod args {
    use std::path::PathBuf;

    use clap::{Parser, ValueEnum};

    use crate::scenario::Scenario;

    /// Which tracker store the server is started with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    pub enum Store {
        /// The default: a `palaver.db` SQLite file in the working directory.
        Sqlite,
        /// `tracker_store: {type: in_memory}` in endpoints.yml.
        Memory,
        /// PostgreSQL tracker store (a fresh database) with the Redis lock store: the
        /// production setup for several replicas.
        Postgres,
        /// Redis tracker store with the Redis lock store.
        Redis,
    }

    impl Store {
        /// The name used in the table and in JSON.
        pub fn name(self) -> &'static str {
            match self {
                Store::Sqlite => "sqlite",
                Store::Memory => "memory",
                Store::Postgres => "postgres",
                Store::Redis => "redis",
            }
        }

        /// Whether several servers can share the store (`--replicas`).
        pub fn shared(self) -> bool {
            matches!(self, Store::Postgres | Store::Redis)
        }
    }

    /// Load-tests palaver's conversation API and prints throughput and latency.
    #[derive(Debug, Parser)]
    #[command(name = "palaver-bench", about)]
    pub struct Args {
        /// Measured seconds per run (each run is preceded by a 1 s warm-up).
        #[arg(long, default_value_t = 5)]
        pub seconds: u64,
        /// Concurrency levels (number of client tasks), comma separated.
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        pub concurrency: Vec<usize>,
        /// Tracker stores to measure, comma separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "sqlite,memory"
        )]
        pub store: Vec<Store>,
        /// Scenarios to run, comma separated (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        pub scenarios: Vec<Scenario>,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        pub json: Option<PathBuf>,
        /// The action server of the `action` scenario.
        #[arg(long, value_enum, default_value = "fast")]
        pub action_server: crate::action_server::Kind,
        /// Python with rasa-sdk installed, for `--action-server rasa-sdk`.
        #[arg(long, env = "PALAVER_TEST_RASA_SDK_PYTHON", default_value = "python3")]
        pub python: String,
        /// Instead of the scenarios: the reminders benchmark with this many pending
        /// reminders (see bench/README.md).
        #[arg(long)]
        pub reminders: Option<usize>,
        /// Reminders of `--reminders` that fall due during the run (firing lag).
        #[arg(long, default_value_t = 2000)]
        pub reminders_due: usize,
        /// Seconds over which those fall due.
        #[arg(long, default_value_t = 10.0)]
        pub reminders_window: f64,
        /// Numbers of palaver processes sharing the store (postgres and redis only),
        /// comma separated; requests go to them in turn.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        pub replicas: Vec<usize>,
        /// PostgreSQL server for `--store postgres` (a fresh database is made per run).
        #[arg(
            long,
            env = "PALAVER_TEST_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        pub postgres_url: String,
        /// Redis server for the Redis lock store and `--store redis`.
        #[arg(
            long,
            env = "PALAVER_TEST_REDIS_URL",
            default_value = "redis://127.0.0.1:6379"
        )]
        pub redis_url: String,
    }

    impl Args {
        /// Parses the command line and checks the values.
        pub fn get() -> anyhow::Result<Args> {
            let mut args = Args::parse();
            if args.seconds == 0 {
                anyhow::bail!("--seconds must be at least 1");
            }
            if args.concurrency.is_empty() || args.concurrency.contains(&0) {
                anyhow::bail!("--concurrency needs positive numbers, e.g. 16,64");
            }
            if args.scenarios.is_empty() {
                args.scenarios = Scenario::ALL.to_vec();
            }
            if args.replicas.is_empty() || args.replicas.contains(&0) {
                anyhow::bail!("--replicas needs positive numbers, e.g. 1,3");
            }
            Ok(args)
        }
    }
}

/// What the figures were measured on.
mod machine {
    /// The machine and build the benchmark runs on.
    #[derive(Debug, Clone)]
    pub struct Machine {
        /// Cores this process may use.
        pub cores: usize,
        /// Total memory in GiB, if `/proc/meminfo` could be read.
        pub mem_gib: Option<f64>,
        /// `release` or `debug` (the server binary is assumed to be built alike).
        pub profile: &'static str,
    }

    impl Machine {
        /// Looks at the current machine.
        pub fn detect() -> Machine {
            Machine {
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                mem_gib: total_memory_kib().map(|kib| kib as f64 / (1024.0 * 1024.0)),
                profile: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            }
        }

        /// One line for the table header.
        pub fn describe(&self) -> String {
            let mem = self.mem_gib.map_or_else(
                || "unknown memory".to_owned(),
                |g| format!("{g:.1} GiB RAM"),
            );
            format!("{} cores, {mem}, {} build", self.cores, self.profile)
        }
    }

    /// `MemTotal` from `/proc/meminfo`, in KiB.
    fn total_memory_kib() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// The server's working directory: a fresh temp dir holding a minimal Rasa project.
mod workdir {
    use std::path::{Path, PathBuf};

    use anyhow::{Context, Result};

    use crate::args::Store;

    const DOMAIN: &str = r#"version: "3.1"
intents:
  - greet
  - act
slots:
  name:
    type: text
    influence_conversation: false
    mappings: []
responses:
  utter_greet:
    - text: "hi"
actions:
  - action_bench
"#;

    const CONFIG: &str = "language: en\npolicies:\n  - name: RulePolicy\n";

    /// One rule, so that the `webhook` scenario runs a rule and an utter response.
    const RULES: &str = r#"version: "3.1"
rules:
  - rule: greet
    steps:
      - intent: greet
      - action: utter_greet
  - rule: act
    steps:
      - intent: act
      - action: action_bench
"#;

    const ENDPOINTS_IN_MEMORY: &str = "tracker_store:\n  type: in_memory\n";

    /// A temp directory that is removed (with its content) when dropped.
    pub struct WorkDir {
        path: PathBuf,
    }

    impl WorkDir {
        /// Creates `<tmp>/palaver-bench-<uuid>` with the project in `project/`, and an
        /// `endpoints.yml` next to it: the action endpoint, the in-memory store's
        /// section, and `extra` (the shared stores' sections). SQLite needs none: the
        /// server's default is `palaver.db` in its working directory.
        pub fn with_endpoints(store: Store, action_url: &str, extra: &str) -> Result<WorkDir> {
            let path = std::env::temp_dir().join(format!("palaver-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let dir = WorkDir { path };
            let project = dir.project();
            std::fs::create_dir_all(&project)
                .with_context(|| format!("creating {}", project.display()))?;
            write(&project.join("domain.yml"), DOMAIN)?;
            write(&project.join("config.yml"), CONFIG)?;
            std::fs::create_dir_all(project.join("data"))
                .with_context(|| format!("creating {}", project.join("data").display()))?;
            write(&project.join("data/rules.yml"), RULES)?;
            let mut endpoints = format!("action_endpoint:\n  url: \"{action_url}\"\n");
            if store == Store::Memory {
                endpoints.push_str(ENDPOINTS_IN_MEMORY);
            }
            endpoints.push_str(extra);
            write(&dir.path.join("endpoints.yml"), &endpoints)?;
            Ok(dir)
        }

        /// The directory itself (the server's working directory).
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// The Rasa project folder.
        pub fn project(&self) -> PathBuf {
            self.path.join("project")
        }
    }

    impl Drop for WorkDir {
        fn drop(&mut self) {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!("warning: could not remove {}: {e}", self.path.display());
            }
        }
    }

    fn write(path: &Path, text: &str) -> Result<()> {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// The `palaver` child process.
mod server {
    use std::fs::File;
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{bail, Context, Result};

    use crate::args::Store;
    use crate::workdir::WorkDir;

    /// How long the server may take to answer `GET /`.
    const READY_TIMEOUT: Duration = Duration::from_secs(30);

    /// A running server, killed (and reaped) when dropped.
    pub struct Server {
        child: Child,
        /// `http://127.0.0.1:<port>`.
        pub base: String,
        log: PathBuf,
    }

    /// The `palaver` binary next to this one.
    pub fn binary() -> Result<PathBuf> {
        let bin = std::env::current_exe()
            .context("locating palaver-bench")?
            .with_file_name(format!("palaver{}", std::env::consts::EXE_SUFFIX));
        if !bin.is_file() {
            bail!(
                "{} not found: build it first with `cargo build --release --bin palaver --bin palaver-bench`",
                bin.display()
            );
        }
        Ok(bin)
    }

    impl Server {
        /// Starts `palaver run` in `dir` on a free port and waits until it answers.
        /// Its stdout and stderr go to `server.log` in `dir`.
        pub async fn start(
            bin: &Path,
            dir: &WorkDir,
            store: Store,
            client: &reqwest::Client,
        ) -> Result<Server> {
            let port = free_port()?;
            let log = dir.path().join("server.log");
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let err = out.try_clone().context("duplicating the log file handle")?;
            let mut cmd = Command::new(bin);
            cmd.arg("run")
                .arg(dir.project())
                .arg("--enable-api")
                .args(["--port", &port.to_string(), "--interface", "127.0.0.1"])
                .current_dir(dir.path())
                .env("RUST_LOG", "warn")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let _ = store;
            cmd.args(["--endpoints", "endpoints.yml"]);
            // Flags set in our environment must not change the server under test.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("PALAVER_") {
                    cmd.env_remove(&key);
                }
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let mut server = Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
            };
            server.wait_ready(client).await?;
            Ok(server)
        }

        /// Polls `GET /` until it answers 200.
        async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<()> {
            let started = Instant::now();
            loop {
                if let Some(status) = self
                    .child
                    .try_wait()
                    .context("checking the server process")?
                {
                    bail!(
                        "the server exited ({status}) before answering; its log:\n{}",
                        self.log_text()
                    );
                }
                let url = format!("{}/", self.base);
                if let Ok(resp) = client.get(&url).send().await {
                    if resp.status() == reqwest::StatusCode::OK {
                        return Ok(());
                    }
                }
                if started.elapsed() > READY_TIMEOUT {
                    bail!(
                        "the server did not answer GET / with 200 within {READY_TIMEOUT:?}; its log:\n{}",
                        self.log_text()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        /// The server's resident memory in MiB (Linux only).
        pub fn rss_mib(&self) -> Option<f64> {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        }

        /// Everything the server logged so far.
        pub fn log_text(&self) -> String {
            std::fs::read_to_string(&self.log)
                .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A port that was free a moment ago (the OS picks it).
    fn free_port() -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        Ok(listener.local_addr()?.port())
    }
}

/// What each scenario requests.
mod scenario {
    use clap::ValueEnum;

    /// The body of every append: one slot event.
    pub const APPEND_BODY: &str = r#"[{"event":"slot","name":"name","value":"x"}]"#;

    /// Conversations each client cycles through in `append-many`.
    pub const IDS_PER_CLIENT: usize = 100;

    /// A request pattern.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    pub enum Scenario {
        /// POST one event, round robin over 100 conversations per client.
        #[value(name = "append-many")]
        AppendMany,
        /// POST one event to the client's own conversation prefilled with 10 events.
        #[value(name = "append-10")]
        Append10,
        /// POST one event to the client's own conversation prefilled with 10,000 events.
        #[value(name = "append-10k")]
        Append10k,
        /// GET the tracker with `include_events=NONE`, 10-event conversation.
        #[value(name = "get-none-10")]
        GetNone10,
        /// GET the tracker with `include_events=NONE`, 10,000-event conversation.
        #[value(name = "get-none-10k")]
        GetNone10k,
        /// GET the full tracker (default `AFTER_RESTART`), 10-event conversation.
        #[value(name = "get-full-10")]
        GetFull10,
        /// POST `/greet` to the REST webhook: session, parse, a rule, an utter response,
        /// round robin over 100 conversations per client.
        #[value(name = "webhook")]
        Webhook,
        /// POST `/act` to the REST webhook: like `webhook`, but the rule runs the
        /// custom action `action_bench` on the action server (`--action-server`).
        #[value(name = "action")]
        Action,
    }

    impl Scenario {
        /// Every scenario, in table order.
        pub const ALL: [Scenario; 8] = [
            Scenario::AppendMany,
            Scenario::Append10,
            Scenario::Append10k,
            Scenario::GetNone10,
            Scenario::GetNone10k,
            Scenario::GetFull10,
            Scenario::Webhook,
            Scenario::Action,
        ];

        /// The name on the command line, in the table and in JSON.
        pub fn name(self) -> &'static str {
            match self {
                Scenario::AppendMany => "append-many",
                Scenario::Append10 => "append-10",
                Scenario::Append10k => "append-10k",
                Scenario::GetNone10 => "get-none-10",
                Scenario::GetNone10k => "get-none-10k",
                Scenario::GetFull10 => "get-full-10",
                Scenario::Webhook => "webhook",
                Scenario::Action => "action",
            }
        }

        /// Whether the scenario POSTs events (one per request).
        pub fn appends(self) -> bool {
            matches!(
                self,
                Scenario::AppendMany | Scenario::Append10 | Scenario::Append10k
            )
        }

        /// Whether the scenario POSTs (appends and webhook messages).
        pub fn posts(self) -> bool {
            self.appends() || self.message().is_some()
        }

        /// The message a webhook scenario sends.
        pub fn message(self) -> Option<&'static str> {
            match self {
                Scenario::Webhook => Some("/greet"),
                Scenario::Action => Some("/act"),
                _ => None,
            }
        }

        /// How many events each client's conversation is prefilled with, if any.
        pub fn prefill(self) -> Option<usize> {
            match self {
                Scenario::AppendMany | Scenario::Webhook | Scenario::Action => None,
                Scenario::Append10 | Scenario::GetNone10 | Scenario::GetFull10 => Some(10),
                Scenario::Append10k | Scenario::GetNone10k => Some(10_000),
            }
        }

        /// The URLs one client cycles through. Appends get conversations of their own
        /// per run (`run` names it); reads do not change a conversation, so they share
        /// `get-<size>-<client>` across runs and scenarios.
        pub fn urls(self, base: &str, run: &str, client: usize) -> Vec<String> {
            if self.message().is_some() {
                // The sender rides in the URL fragment, which is never sent: the
                // request builds the webhook body from it.
                return self
                    .conversation_ids(run, client)
                    .into_iter()
                    .map(|id| format!("{base}/webhooks/rest/webhook#{id}"))
                    .collect();
            }
            let path = match self {
                Scenario::AppendMany | Scenario::Append10 | Scenario::Append10k => {
                    "tracker/events?include_events=NONE"
                }
                Scenario::GetNone10 | Scenario::GetNone10k => "tracker?include_events=NONE",
                Scenario::GetFull10 => "tracker",
                Scenario::Webhook | Scenario::Action => "",
            };
            self.conversation_ids(run, client)
                .into_iter()
                .map(|id| format!("{base}/conversations/{id}/{path}"))
                .collect()
        }

        /// The conversation ids one client uses.
        pub fn conversation_ids(self, run: &str, client: usize) -> Vec<String> {
            match (self, self.prefill()) {
                (Scenario::AppendMany | Scenario::Webhook | Scenario::Action, _) => (0
                    ..IDS_PER_CLIENT)
                    .map(|k| format!("{run}-c{client}-{k}"))
                    .collect(),
                (s, Some(n)) if !s.appends() => vec![format!("get-{n}-c{client}")],
                _ => vec![format!("{run}-c{client}")],
            }
        }
    }

    /// A PUT body with `n` slot events.
    pub fn prefill_body(n: usize) -> String {
        let one = r#"{"event":"slot","name":"name","value":"x"}"#;
        let mut body = String::with_capacity(n * (one.len() + 1) + 2);
        body.push('[');
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            body.push_str(one);
        }
        body.push(']');
        body
    }
}

/// The clients: prefilling conversations and driving load for a fixed time.
mod load {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, bail, Context, Result};
    use futures::{StreamExt, TryStreamExt};
    use hdrhistogram::Histogram;
    use reqwest::header::CONTENT_TYPE;
    use reqwest::{Client, StatusCode};

    use crate::scenario::{prefill_body, APPEND_BODY};

    /// Largest latency the histograms hold, in microseconds (longer ones saturate).
    const MAX_LATENCY_US: u64 = 600_000_000;

    /// PUTs running at once while prefilling.
    const PREFILL_PARALLELISM: usize = 4;

    /// A shared HTTP client whose pool keeps a connection per client task.
    pub fn client(max_concurrency: usize) -> Result<Client> {
        Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(max_concurrency.max(1))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")
    }

    /// Replaces each conversation's history with `n` slot events, skipping those in
    /// `done` (and adding the others to it). Returns how many were filled.
    pub async fn prefill(
        client: &Client,
        base: &str,
        ids: Vec<String>,
        n: usize,
        done: &mut HashSet<String>,
    ) -> Result<usize> {
        let todo: Vec<String> = ids.into_iter().filter(|id| !done.contains(id)).collect();
        let body = prefill_body(n);
        futures::stream::iter(todo.iter().cloned())
            .map(|id| {
                let body = body.clone();
                async move {
                    let url =
                        format!("{base}/conversations/{id}/tracker/events?include_events=NONE");
                    let resp = client
                        .put(&url)
                        .header(CONTENT_TYPE, "application/json")
                        .body(body)
                        .send()
                        .await
                        .with_context(|| format!("PUT {url}"))?;
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status != StatusCode::OK {
                        bail!("PUT {url}: HTTP {status}: {}", snippet(&text));
                    }
                    Ok(())
                }
            })
            .buffer_unordered(PREFILL_PARALLELISM)
            .try_collect::<Vec<()>>()
            .await?;
        let filled = todo.len();
        done.extend(todo);
        Ok(filled)
    }

    /// What one run measured.
    pub struct Outcome {
        /// Requests answered 200 within the measured window.
        pub ok: u64,
        /// Requests that failed or were not answered 200.
        pub errors: u64,
        /// The first error, for the report.
        pub first_error: Option<String>,
        /// Latencies of the successful requests, in microseconds.
        pub latency_us: Histogram<u64>,
        /// The measured window, until the last client finished.
        pub elapsed: Duration,
    }

    /// Runs one task per entry of `urls_per_client`; each cycles through its URLs
    /// (POSTing [`APPEND_BODY`] or a webhook message if `append`, else GETting) until `warmup + measure`
    /// has passed. Requests started during the warm-up are not counted.
    pub async fn run(
        client: &Client,
        append: bool,
        message: &'static str,
        urls_per_client: Vec<Vec<String>>,
        warmup: Duration,
        measure: Duration,
    ) -> Result<Outcome> {
        let measure_from = Instant::now() + warmup;
        let deadline = measure_from + measure;
        let tasks: Vec<_> = urls_per_client
            .into_iter()
            .map(|urls| {
                tokio::spawn(client_task(
                    client.clone(),
                    append,
                    message,
                    urls,
                    measure_from,
                    deadline,
                ))
            })
            .collect();
        let mut total = Outcome {
            ok: 0,
            errors: 0,
            first_error: None,
            latency_us: histogram()?,
            elapsed: Duration::ZERO,
        };
        for task in tasks {
            let one = task.await.context("a client task panicked")??;
            total.ok += one.ok;
            total.errors += one.errors;
            total.first_error = total.first_error.or(one.first_error);
            total
                .latency_us
                .add(&one.latency_us)
                .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        }
        total.elapsed = measure_from.elapsed();
        Ok(total)
    }

    /// One client: requests in a loop until `deadline`.
    async fn client_task(
        client: Client,
        append: bool,
        message: &'static str,
        urls: Vec<String>,
        measure_from: Instant,
        deadline: Instant,
    ) -> Result<Outcome> {
        let mut out = Outcome {
            ok: 0,
            errors: 0,
            first_error: None,
            latency_us: histogram()?,
            elapsed: Duration::ZERO,
        };
        if urls.is_empty() {
            return Ok(out);
        }
        for url in urls.iter().cycle() {
            let started = Instant::now();
            if started >= deadline {
                break;
            }
            let result = request(&client, append, message, url).await;
            if started < measure_from {
                continue;
            }
            match result {
                Ok(()) => {
                    out.ok += 1;
                    out.latency_us
                        .saturating_record(started.elapsed().as_micros() as u64);
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(e);
                }
            }
        }
        Ok(out)
    }

    /// One request; the body is read to the end so the connection can be reused.
    async fn request(
        client: &Client,
        append: bool,
        message: &str,
        url: &str,
    ) -> Result<(), String> {
        let req = if let (true, Some((webhook, sender))) = (append, url.split_once('#')) {
            client
                .post(webhook)
                .json(&serde_json::json!({"sender": sender, "message": message}))
        } else if append {
            client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(APPEND_BODY)
        } else {
            client.get(url)
        };
        let resp = req.send().await.map_err(|e| format!("{e}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!(
                "HTTP {status}: {}",
                snippet(&String::from_utf8_lossy(&body))
            ));
        }
        Ok(())
    }

    fn histogram() -> Result<Histogram<u64>> {
        Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| anyhow!("creating a histogram: {e:?}"))
    }

    fn snippet(text: &str) -> String {
        text.chars().take(200).collect()
    }
}

/// The results: one row per store × scenario × concurrency, printed and as JSON.
mod report {
    use std::fmt::Write as _;

    use serde_json::{json, Value};

    use crate::load::Outcome;
    use crate::machine::Machine;
    use crate::scenario::Scenario;

    /// One row of the table.
    pub struct Row {
        /// `sqlite`, `memory`, `postgres`, `redis`; `postgresx3` for 3 replicas.
        pub store: &'static str,
        /// Which requests were made.
        pub scenario: Scenario,
        /// Client tasks.
        pub concurrency: usize,
        /// Successful requests per second.
        pub rps: f64,
        /// Events appended per second (appends only: one per request).
        pub events_per_s: Option<f64>,
        /// Latency percentiles and maximum, in ms.
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub max_ms: f64,
        /// Failed or non-200 requests.
        pub errors: u64,
        /// The first error, if any.
        pub first_error: Option<String>,
    }

    impl Row {
        /// Turns a run's outcome into figures.
        pub fn new(
            store: &'static str,
            scenario: Scenario,
            concurrency: usize,
            o: &Outcome,
        ) -> Row {
            let secs = o.elapsed.as_secs_f64().max(1e-9);
            let rps = o.ok as f64 / secs;
            let ms = |us: u64| us as f64 / 1000.0;
            let h = &o.latency_us;
            let (p50, p99, max) = if h.is_empty() {
                (0, 0, 0)
            } else {
                (
                    h.value_at_quantile(0.50),
                    h.value_at_quantile(0.99),
                    h.max(),
                )
            };
            Row {
                store,
                scenario,
                concurrency,
                rps,
                events_per_s: scenario.appends().then_some(rps),
                p50_ms: ms(p50),
                p99_ms: ms(p99),
                max_ms: ms(max),
                errors: o.errors,
                first_error: o.first_error.clone(),
            }
        }

        fn to_json(&self) -> Value {
            json!({
                "store": self.store,
                "scenario": self.scenario.name(),
                "concurrency": self.concurrency,
                "requests_per_s": self.rps,
                "events_per_s": self.events_per_s,
                "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms,
                "max_ms": self.max_ms,
                "errors": self.errors,
                "first_error": self.first_error,
            })
        }
    }

    /// "10,000-event / 10-event" for one store and concurrency.
    pub struct Ratio {
        pub store: &'static str,
        pub concurrency: usize,
        /// p50 of append-10k over append-10.
        pub append_p50: Option<f64>,
        /// Throughput of append-10k over append-10.
        pub append_rps: Option<f64>,
        /// p50 of get-none-10k over get-none-10.
        pub get_none_p50: Option<f64>,
        /// Throughput of get-none-10k over get-none-10.
        pub get_none_rps: Option<f64>,
    }

    /// The ratios for every store × concurrency that ran both sizes of a scenario.
    pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
        let mut out: Vec<Ratio> = Vec::new();
        for r in rows {
            if out
                .iter()
                .any(|x| x.store == r.store && x.concurrency == r.concurrency)
            {
                continue;
            }
            let find = |s: Scenario| {
                rows.iter().find(|x| {
                    x.store == r.store && x.concurrency == r.concurrency && x.scenario == s
                })
            };
            let ratio = |big: Scenario, small: Scenario, f: fn(&Row) -> f64| {
                let (b, s) = (find(big)?, find(small)?);
                (f(s) > 0.0).then(|| f(b) / f(s))
            };
            out.push(Ratio {
                store: r.store,
                concurrency: r.concurrency,
                append_p50: ratio(Scenario::Append10k, Scenario::Append10, |x| x.p50_ms),
                append_rps: ratio(Scenario::Append10k, Scenario::Append10, |x| x.rps),
                get_none_p50: ratio(Scenario::GetNone10k, Scenario::GetNone10, |x| x.p50_ms),
                get_none_rps: ratio(Scenario::GetNone10k, Scenario::GetNone10, |x| x.rps),
            });
        }
        out
    }

    /// The header line.
    pub fn header(machine: &Machine, seconds: u64) -> String {
        format!(
            "palaver-bench: {}; {seconds} s per run after a 1 s warm-up; latencies in ms",
            machine.describe()
        )
    }

    /// The table and the ratios, as printed.
    pub fn table(machine: &Machine, seconds: u64, rows: &[Row], notes: &[String]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", header(machine, seconds));
        let _ = writeln!(
            s,
            "{:<7} {:<13} {:>5} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "store", "scenario", "conc", "req/s", "events/s", "p50", "p99", "max", "errors"
        );
        for r in rows {
            let events = r
                .events_per_s
                .map_or_else(|| "-".to_owned(), |e| format!("{e:.0}"));
            let _ = writeln!(
                s,
                "{:<7} {:<13} {:>5} {:>10.0} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                r.store,
                r.scenario.name(),
                r.concurrency,
                r.rps,
                events,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            );
        }
        let ratios = ratios(rows);
        if !ratios.is_empty() {
            let _ = writeln!(s, "\nratio 10,000-event / 10-event conversation:");
            let _ = writeln!(
                s,
                "{:<7} {:>5} {:>12} {:>12} {:>14} {:>14}",
                "store", "conc", "append p50", "append req/s", "get-none p50", "get-none req/s"
            );
            let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"));
            for r in &ratios {
                let _ = writeln!(
                    s,
                    "{:<7} {:>5} {:>12} {:>12} {:>14} {:>14}",
                    r.store,
                    r.concurrency,
                    f(r.append_p50),
                    f(r.append_rps),
                    f(r.get_none_p50),
                    f(r.get_none_rps)
                );
            }
        }
        let errors: Vec<&Row> = rows.iter().filter(|r| r.first_error.is_some()).collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\nfirst error per run:");
            for r in errors {
                let _ = writeln!(
                    s,
                    "  {} {} c={}: {}",
                    r.store,
                    r.scenario.name(),
                    r.concurrency,
                    r.first_error.as_deref().unwrap_or_default()
                );
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(s);
            for n in notes {
                let _ = writeln!(s, "{n}");
            }
        }
        s
    }

    /// Everything as one JSON document.
    pub fn to_json(machine: &Machine, seconds: u64, rows: &[Row], notes: &[String]) -> Value {
        let ratios: Vec<Value> = ratios(rows)
            .iter()
            .map(|r| {
                json!({
                    "store": r.store,
                    "concurrency": r.concurrency,
                    "append_p50": r.append_p50,
                    "append_requests_per_s": r.append_rps,
                    "get_none_p50": r.get_none_p50,
                    "get_none_requests_per_s": r.get_none_rps,
                })
            })
            .collect();
        json!({
            "machine": {
                "cores": machine.cores,
                "memory_gib": machine.mem_gib,
                "profile": machine.profile,
            },
            "seconds": seconds,
            "warmup_seconds": 1,
            "results": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "ratios_10000_over_10": ratios,
            "notes": notes,
        })
    }
}

/// The servers behind the shared stores: a fresh PostgreSQL database, a Redis key
/// prefix of the run's own.
mod shared {
    use anyhow::{Context, Result};
    use sqlx::Connection;

    use crate::args::{Args, Store};

    /// The endpoints.yml sections of a run, and what to remove afterwards.
    pub struct SharedStores {
        /// Sections to add to endpoints.yml (empty for the embedded stores).
        pub endpoints: String,
        postgres: Option<(String, String)>,
    }

    impl SharedStores {
        /// Creates what `store` needs.
        pub async fn create(store: Store, args: &Args) -> Result<SharedStores> {
            if !store.shared() {
                return Ok(SharedStores {
                    endpoints: String::new(),
                    postgres: None,
                });
            }
            let redis = reqwest::Url::parse(&args.redis_url).context("--redis-url")?;
            let run = uuid::Uuid::new_v4().simple().to_string();
            let lock = format!(
                "lock_store:\n  type: redis\n  url: {}\n  port: {}\n  db: 1\n  key_prefix: b{run}\n",
                redis.host_str().unwrap_or("127.0.0.1"),
                redis.port().unwrap_or(6379)
            );
            if store == Store::Redis {
                return Ok(SharedStores {
                    endpoints: format!(
                        "{lock}tracker_store:\n  type: redis\n  url: {}\n  port: {}\n  db: 0\n  \
                         key_prefix: b{run}\n  record_exp: 3600\n",
                        redis.host_str().unwrap_or("127.0.0.1"),
                        redis.port().unwrap_or(6379)
                    ),
                    postgres: None,
                });
            }
            let db = format!("palaver_bench_{run}");
            let mut conn = sqlx::PgConnection::connect(&args.postgres_url)
                .await
                .with_context(|| format!("connecting to {}", args.postgres_url))?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut conn)
                .await
                .context("creating the benchmark database")?;
            let mut url = reqwest::Url::parse(&args.postgres_url).context("--postgres-url")?;
            url.set_path(&format!("/{db}"));
            Ok(SharedStores {
                endpoints: format!(
                    "{lock}tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: {url}\n"
                ),
                postgres: Some((args.postgres_url.clone(), db)),
            })
        }

        /// Drops the benchmark database.
        pub async fn remove(self) {
            if let Some((server, db)) = self.postgres {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            }
        }
    }
}

/// Warm-up before each measured run.
const WARMUP: Duration = Duration::from_secs(1);

/// Runs every scenario × concurrency against freshly started servers: `replicas` of
/// them sharing the store, requests going to each in turn.
async fn bench_store(
    bin: &Path,
    args: &Args,
    store: Store,
    replicas: usize,
    action_url: &str,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let max_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    let client = load::client(max_conc)?;
    if replicas > 1 && !store.shared() {
        bail!("--replicas above 1 needs a shared store (postgres or redis)");
    }
    let label: &'static str = if replicas == 1 {
        store.name()
    } else {
        Box::leak(format!("{}x{replicas}", store.name()).into_boxed_str())
    };
    // Declared before the servers so that they are removed after the servers are killed.
    let shared = shared::SharedStores::create(store, args).await?;
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let dir = workdir::WorkDir::with_endpoints(store, action_url, &shared.endpoints)?;
        let server = server::Server::start(bin, &dir, store, &client).await?;
        eprintln!(
            "[{label}] server up at {} (working dir {})",
            server.base,
            dir.path().display()
        );
        dirs.push(dir);
        servers.push(server);
    }
    let server = &servers[0];
    let mut prefilled = HashSet::new();
    for &scenario in &args.scenarios {
        for &conc in &args.concurrency {
            let run = format!("{}-c{conc}", scenario.name());
            if let Some(n) = scenario.prefill() {
                let ids: Vec<String> = (0..conc)
                    .flat_map(|c| scenario.conversation_ids(&run, c))
                    .collect();
                let t = Instant::now();
                let filled = load::prefill(&client, &server.base, ids, n, &mut prefilled).await?;
                eprintln!(
                    "[{}] {run}: prefilled {filled} conversation(s) of {n} events in {:.1} s",
                    store.name(),
                    t.elapsed().as_secs_f64()
                );
            }
            // Request k of client c goes to replica (c + k) mod replicas.
            let urls = (0..conc)
                .map(|c| {
                    scenario
                        .urls(&server.base, &run, c)
                        .into_iter()
                        .enumerate()
                        .map(|(k, u)| {
                            u.replacen(&server.base, &servers[(c + k) % replicas].base, 1)
                        })
                        .collect()
                })
                .collect();
            let outcome = load::run(
                &client,
                scenario.posts(),
                scenario.message().unwrap_or_default(),
                urls,
                WARMUP,
                Duration::from_secs(args.seconds),
            )
            .await?;
            let row = Row::new(label, scenario, conc, &outcome);
            eprintln!(
                "[{label}] {run}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                row.rps, row.p50_ms, row.p99_ms, row.errors
            );
            rows.push(row);
        }
    }
    if let Some(rss) = server.rss_mib() {
        notes.push(format!(
            "{}: server resident memory at the end: {rss:.0} MiB",
            store.name()
        ));
    }
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        notes.push(format!(
            "{}: the server logged nothing at warn level or above",
            store.name()
        ));
    } else {
        notes.push(format!(
            "{}: the server logged {} line(s) at warn or above; the first:",
            store.name(),
            lines.len()
        ));
        notes.extend(lines.iter().take(5).map(|l| format!("  {l}")));
    }
    drop(servers);
    drop(dirs);
    shared.remove().await;
    Ok(())
}

/// Runs the whole benchmark and prints the results.
async fn run(args: Args) -> Result<()> {
    let bin = server::binary()?;
    let machine = machine::Machine::detect();
    if let Some(pending) = args.reminders {
        println!("{}", machine.describe());
        return reminders::run_all(&bin, &args, pending).await;
    }
    eprintln!("{}", report::header(&machine, args.seconds));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // The action server lives in its own temp dir (rasa_sdk needs an actions package).
    let action_dir =
        std::env::temp_dir().join(format!("palaver-bench-actions-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&action_dir)?;
    let actions = if args.scenarios.contains(&scenario::Scenario::Action) {
        let a =
            action_server::ActionServer::start(args.action_server, &args.python, &action_dir).await;
        if a.is_err() {
            let _ = std::fs::remove_dir_all(&action_dir);
        }
        let a = a?;
        notes.push(format!(
            "action scenario: {} action server at {}",
            args.action_server.name(),
            a.url
        ));
        Some(a)
    } else {
        None
    };
    let action_url = actions
        .as_ref()
        .map(|a| a.url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:9/webhook".into());
    for &store in &args.store {
        for &replicas in &args.replicas {
            if replicas > 1 && !store.shared() {
                continue;
            }
            bench_store(
                &bin,
                &args,
                store,
                replicas,
                &action_url,
                &mut rows,
                &mut notes,
            )
            .await
            .with_context(|| format!("benchmarking the {} store", store.name()))?;
        }
    }
    drop(actions);
    let _ = std::fs::remove_dir_all(&action_dir);
    println!("{}", report::table(&machine, args.seconds, &rows, &notes));
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&report::to_json(&machine, args.seconds, &rows, &notes))?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::get()?;
    // On Ctrl-C the run future is dropped, which kills the server and removes the
    // temp dir.
    tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}
