//! A whole gateway node: the registry, the [`Gateway`] (router and dispatcher), this node's
//! own engine as a local worker, the p2p side (membership, bundle downloads, the sweep that
//! forgets departed workers) and the HTTP API.
//!
//! Topology: [`GatewayNode::spawn`] starts everything in dependency order and owns every task
//! in one `JoinSet`. Two cancellation tokens stop them in reverse order on
//! [`GatewayNode::shutdown`]: the HTTP server first (responses in progress get a bounded
//! grace), then the p2p tasks, then the p2p swarm itself, the engine and the store (dropped).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use nova_api::AppState;
use nova_p2p::{Keypair, Multiaddr, P2p, P2pConfig};
use nova_proto::Limits;
use nova_store::Store;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    http_server::{self, HttpConfig},
    local_engine::{self, EngineSpec},
    membership::{self, Bounds},
    Gateway, GatewayConfig, LocalWorker, ShelfBundles, SpawnError,
};

/// How long the p2p side may take to report its listen addresses.
const P2P_LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the p2p tasks may take to stop before they are aborted.
const TASKS_GRACE: Duration = Duration::from_secs(2);

/// How long running jobs may go on after a shutdown starts before they are stopped with an
/// error: inside the HTTP server's default 5 s grace, leaving it time to send that error.
const JOBS_GRACE: Duration = Duration::from_secs(4);

/// The p2p side of a node.
#[derive(Debug, Clone)]
pub struct P2pSettings {
    /// The node's identity.
    pub key: Keypair,
    /// The swarm secret.
    pub secret: String,
    /// Address to listen on.
    pub listen: Multiaddr,
    /// Find and be found on the LAN by mDNS (refused on loopback-only addresses).
    pub mdns: bool,
}

impl P2pSettings {
    /// Checks what [`P2p::spawn`] would refuse without starting anything, so a caller can fail
    /// before slow work (loading a model): mDNS on a loopback-only address, a TCP port someone
    /// already listens on.
    pub fn check(&self) -> Result<(), SpawnError> {
        nova_p2p::ensure_port_free(&self.listen).map_err(|e| SpawnError::P2p(e.to_string()))?;
        let loopback = self.listen.iter().any(|p| match p {
            nova_p2p::Protocol::Ip4(ip) => ip.is_loopback(),
            nova_p2p::Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        });
        if self.mdns && loopback {
            return Err(SpawnError::P2p(nova_p2p::P2pError::MdnsOnLoopback.to_string()));
        }
        Ok(())
    }
}

/// This node's own engine, run as a worker of its gateway.
#[derive(Debug, Clone)]
pub struct LocalWorkerSpec {
    /// Its worker id (e.g. `local-<host>`).
    pub id: String,
    /// Its name in the swarm view.
    pub name: String,
    /// The engine.
    pub engine: EngineSpec,
}

/// Everything a gateway node needs.
#[derive(Debug, Clone)]
pub struct GatewayNodeConfig {
    /// The HTTP API's address, timeouts and connection cap.
    pub http: HttpConfig,
    /// Bearer token HTTP clients must present.
    pub token: String,
    /// Bounds on prompts and parameters.
    pub limits: Limits,
    /// Routing and admission.
    pub gateway: GatewayConfig,
    /// The registry's SQLite file; `None` keeps nothing across restarts.
    pub store: Option<PathBuf>,
    /// The p2p side.
    pub p2p: P2pSettings,
    /// Directory of published update bundles; `None` serves none.
    pub bundle_dir: Option<PathBuf>,
    /// The local worker; `None` only routes.
    pub local: Option<LocalWorkerSpec>,
    /// Most connected workers (departed ones do not count); more are refused.
    pub max_members: usize,
    /// This node's documents, shared with grounded requests under the given name
    /// (`--share-knowledge`); `None` shares none.
    pub knowledge: Option<(String, Arc<dyn crate::KnowledgeBase>)>,
    /// A model pooled across this node and workers that offer memory (`--pool`); `None`
    /// pools none.
    pub pool: Option<crate::PoolSpec>,
}

/// What the local worker turned out to be.
#[derive(Debug, Clone)]
pub struct LocalSummary {
    /// The model it serves.
    pub model: String,
    /// Its measured speed, tokens per second.
    pub tokens_per_s: f64,
}

/// A running gateway node. Stop it with [`GatewayNode::shutdown`]; dropping it aborts every
/// task without waiting.
#[must_use = "dropping the node stops it"]
#[derive(Debug)]
pub struct GatewayNode {
    gateway: Gateway,
    http_addr: SocketAddr,
    p2p_addrs: Vec<Multiaddr>,
    local: Option<LocalSummary>,
    http_cancel: CancellationToken,
    cancel: CancellationToken,
    http: Option<tokio::task::JoinHandle<()>>,
    tasks: JoinSet<()>,
    p2p: Option<P2p>,
    failure: Arc<Mutex<Option<String>>>,
}

impl GatewayNode {
    /// Starts the node: opens the store, binds the HTTP address (so a taken port fails before
    /// a model loads), loads and probes the local engine, starts p2p and waits for its
    /// addresses, then serves. Not cancel-safe: a dropped future may leave the engine loading
    /// on its thread until it finishes.
    pub async fn spawn(config: GatewayNodeConfig) -> Result<Self, SpawnError> {
        config.p2p.check()?;
        let store = match &config.store {
            Some(path) => {
                let p = path.clone();
                let opened = tokio::task::spawn_blocking(move || Store::open(&p))
                    .await
                    .map_err(|e| store_error(path, e.to_string()))?
                    .map_err(|e| store_error(path, e.to_string()))?;
                Some(opened)
            }
            None => None,
        };
        let gateway = Gateway::new(config.gateway.clone(), store).await;
        if let Some((name, kb)) = config.knowledge.clone() {
            gateway.set_knowledge(name, kb);
        }
        let listener = tokio::net::TcpListener::bind(config.http.bind).await.map_err(|e| {
            SpawnError::HttpListen { addr: config.http.bind, reason: e.to_string() }
        })?;
        let http_addr = listener.local_addr().map_err(|e| SpawnError::HttpListen {
            addr: config.http.bind,
            reason: e.to_string(),
        })?;

        let local = match config.local.clone() {
            Some(spec) => {
                let loaded = local_engine::load(spec.engine).await?;
                let model = loaded.engine.info().model.clone();
                tracing::info!(%model, tokens_per_s = loaded.tokens_per_s, "local worker ready");
                gateway.add_worker(Arc::new(LocalWorker::new(
                    spec.id,
                    spec.name,
                    loaded.engine,
                    loaded.tokens_per_s,
                )));
                Some(LocalSummary { model, tokens_per_s: loaded.tokens_per_s })
            }
            None => None,
        };

        let p2p = P2p::spawn(P2pConfig {
            key: config.p2p.key.clone(),
            secret: config.p2p.secret.clone(),
            listen: vec![config.p2p.listen.clone()],
            idle_timeout: Duration::from_secs(3600),
            mdns: config.p2p.mdns,
        })
        .map_err(|e| SpawnError::P2p(e.to_string()))?;
        let p2p_addrs = tokio::time::timeout(P2P_LISTEN_TIMEOUT, p2p.listen_addrs())
            .await
            .map_err(|_| {
                SpawnError::P2p(format!(
                    "could not listen on {} within {P2P_LISTEN_TIMEOUT:?}",
                    config.p2p.listen
                ))
            })?
            .map_err(|e| SpawnError::P2p(e.to_string()))?;
        gateway.set_refused_counter(p2p.refused_counter());
        let pool = match config.pool.clone() {
            Some(spec) => {
                let pool = crate::PooledWorker::new(spec)
                    .map_err(|e| SpawnError::Engine(format!("the pooled model: {e}")))?;
                let pool = Arc::new(pool);
                gateway.add_worker(pool.clone());
                Some(pool)
            }
            None => None,
        };

        let cancel = CancellationToken::new();
        let failure = Arc::new(Mutex::new(None));
        let mut tasks = JoinSet::new();
        let shelf = config.bundle_dir.clone().map(|d| Arc::new(nova_update::Shelf::new(d)));
        let forget_after = config.gateway.forget_after;
        let bounds = Bounds {
            max_members: config.max_members,
            // A connected worker that stopped heartbeating is dropped no sooner than it would be
            // stale, and no sooner than a departed one would be forgotten.
            silence: forget_after.max(config.gateway.stale_after),
        };
        tasks.spawn(membership::accept_members(
            gateway.clone(),
            p2p.control(),
            shelf.clone(),
            bounds,
            cancel.child_token(),
        ));
        if let Some(pool) = pool {
            tasks.spawn(crate::pool::run(
                pool,
                gateway.clone(),
                p2p.control(),
                cancel.child_token(),
            ));
        }
        let every = (forget_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tasks.spawn(membership::sweep(gateway.clone(), every, cancel.child_token()));
        if let Some(shelf) = &shelf {
            let (shelf, control, stop) = (shelf.clone(), p2p.control(), cancel.child_token());
            tasks.spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = crate::serve_bundles(shelf, control) => {}
                }
            });
        }

        let mut state = AppState::new(Arc::new(gateway.clone()), &config.token, config.limits)
            .with_cors(config.http.cors_origins.clone());
        if let Some(shelf) = shelf {
            state = state.with_bundles(Arc::new(ShelfBundles(shelf)));
        }
        let app = nova_api::router(state);
        let http_cancel = CancellationToken::new();
        let http = tokio::spawn({
            let (stop, failure, root) = (http_cancel.clone(), failure.clone(), cancel.clone());
            let http_config = config.http.clone();
            async move {
                http_server::serve(listener, app, http_config, stop.clone()).await;
                if !stop.is_cancelled() {
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some("the HTTP server stopped".into());
                    root.cancel();
                }
            }
        });
        Ok(Self {
            gateway,
            http_addr,
            p2p_addrs,
            local,
            http_cancel,
            cancel,
            http: Some(http),
            tasks,
            p2p: Some(p2p),
            failure,
        })
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The p2p addresses workers join (with `/p2p/<id>`).
    pub fn p2p_addrs(&self) -> &[Multiaddr] {
        &self.p2p_addrs
    }

    /// The local worker, when there is one.
    pub fn local(&self) -> Option<&LocalSummary> {
        self.local.as_ref()
    }

    /// The router and dispatcher, e.g. to inspect the swarm in tests.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Resolves when the node stops by itself (a subsystem failed); see [`Self::failure`].
    /// Cancel-safe.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await
    }

    /// Why the node stopped by itself, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the node in reverse dependency order: HTTP first (responses in progress get the
    /// configured grace), then membership, bundles and the sweep, then the p2p swarm, the
    /// engine and the store. Bounded in time. Not cancel-safe: a dropped future aborts
    /// whatever had not stopped yet.
    pub async fn shutdown(mut self) {
        self.http_cancel.cancel();
        if let Some(http) = self.http.take() {
            // Jobs still running shortly before the HTTP grace ends are stopped, so their
            // clients get a `shutdown` error (an error event on a stream) instead of a cut.
            let gateway = self.gateway.clone();
            let stop_jobs = async move {
                tokio::time::sleep(JOBS_GRACE).await;
                gateway.stop_jobs();
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = http => {}
                () = stop_jobs => {}
            }
        }
        self.gateway.stop_jobs();
        self.cancel.cancel();
        let drained = tokio::time::timeout(TASKS_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.shutdown().await;
        }
        drop(self.p2p.take());
    }
}

impl Drop for GatewayNode {
    fn drop(&mut self) {
        self.http_cancel.cancel();
        self.cancel.cancel();
        if let Some(h) = &self.http {
            h.abort();
        }
    }
}

fn store_error(path: &std::path::Path, reason: String) -> SpawnError {
    SpawnError::Store { path: path.to_path_buf(), reason }
}
