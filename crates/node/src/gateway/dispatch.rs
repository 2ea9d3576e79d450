//! Starting work on workers.
//!
//! Selection and submission happen together under one short lock, so two jobs can never book
//! the same free slot from the same stale view (which is how a worker used to answer "queue
//! full" after the client had already been sent 200). When every worker is busy, a job waits:
//! callers hold their place in the gateway's bounded FIFO queue (see `Gateway::run`) and poll
//! here until a slot frees up or their wait ends.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use nova_api::{InferError, Job};
use nova_engine::TokenStream;
use nova_proto::ValidRequest;
use nova_router::{ClusterView, Ineligible};
use tokio::time::Instant;

use super::{lock, Inner};
use crate::Worker;

/// How often a waiting job looks again when no capacity notice arrives. Remote workers free
/// their slot a moment after their stream ends, without telling anyone, so waiting only for
/// notices could miss one.
const POLL: Duration = Duration::from_millis(20);

/// A generation that a worker has accepted.
pub(crate) struct Started {
    pub(crate) worker: Arc<dyn Worker>,
    pub(crate) stream: TokenStream,
}

/// The workers a job has asked, shared by its attempts so that none is asked twice at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tried(Arc<Mutex<HashSet<String>>>);

impl Tried {
    pub(crate) fn contains(&self, id: &str) -> bool {
        lock(&self.0).contains(id)
    }

    pub(crate) fn insert(&self, id: &str) {
        lock(&self.0).insert(id.to_string());
    }

    /// Lets `id` be asked again (it was only busy).
    pub(crate) fn remove(&self, id: &str) {
        lock(&self.0).remove(id);
    }
}

/// Why nothing could be started.
enum Unavailable {
    /// Waiting will not help soon: nobody joined, or every candidate is stale or paused.
    Never(String),
    /// Some candidate is busy; a slot may free up.
    Busy,
}

impl Inner {
    /// Starts `req` on up to `want` eligible workers that `tried` does not hold, now.
    fn try_start(
        &self,
        job: &Job,
        req: &ValidRequest,
        want: usize,
        tried: &Tried,
    ) -> Result<Vec<Started>, Unavailable> {
        let _one_at_a_time = lock(&self.dispatch);
        let view = self.view();
        let sel = self.select(&view, job, view.workers.len());
        let by_id: HashMap<String, Arc<dyn Worker>> =
            lock(&self.workers).iter().map(|w| (w.id().to_string(), w.clone())).collect();
        let mut started = Vec::new();
        let mut refused = false;
        for id in &sel.workers {
            if started.len() >= want.max(1) {
                break;
            }
            if tried.contains(id) {
                continue;
            }
            let Some(worker) = by_id.get(id).cloned() else { continue };
            // Each worker of one call gets its own sample (id, and seed if fixed).
            match worker.submit(req.sample(started.len() as u64)) {
                Ok(stream) => {
                    tried.insert(id);
                    started.push(Started { worker, stream });
                }
                Err(e) => {
                    // Its queue filled up since its last report: it is busy, not broken.
                    tracing::debug!(worker = %id, error = %e, "worker refused a task at dispatch");
                    refused = true;
                }
            }
        }
        if !started.is_empty() {
            return Ok(started);
        }
        if refused || any_busy(&view, job, tried) {
            Err(Unavailable::Busy)
        } else {
            Err(Unavailable::Never(describe_no_capacity(&view, job.model.as_deref(), tried)))
        }
    }

    /// Starts `req` on up to `want` workers, waiting until `until` while every candidate is
    /// busy. Cancel-safe: dropping the future starts nothing more.
    pub(crate) async fn start(
        &self,
        job: &Job,
        req: &ValidRequest,
        want: usize,
        tried: &Tried,
        until: Instant,
    ) -> Result<Vec<Started>, InferError> {
        loop {
            let capacity = self.capacity.notified();
            match self.try_start(job, req, want, tried) {
                Ok(started) => return Ok(started),
                Err(Unavailable::Never(detail)) => {
                    return Err(InferError::NoCapacity { detail, retry_after_s: 5 })
                }
                Err(Unavailable::Busy) => {}
            }
            let now = Instant::now();
            if now >= until {
                return Err(InferError::Overloaded { retry_after_s: 1 });
            }
            tokio::select! {
                () = capacity => {}
                () = tokio::time::sleep(POLL.min(until - now)) => {}
            }
        }
    }
}

impl Inner {
    /// Starts up to `want` samples of `req` (numbered from `first_sample`) on free sequences
    /// now, a worker taking several while it has free ones: each goes where a new stream
    /// expects the most speed, counting the samples placed before it. Workers in `exclude`
    /// get none. Never waits; starts nothing when no sequence is free.
    pub(crate) fn start_samples(
        &self,
        job: &Job,
        req: &ValidRequest,
        first_sample: u64,
        want: usize,
        exclude: &Tried,
    ) -> Vec<Started> {
        let _one_at_a_time = lock(&self.dispatch);
        let view = self.view();
        let by_id: HashMap<String, Arc<dyn Worker>> =
            lock(&self.workers).iter().map(|w| (w.id().to_string(), w.clone())).collect();
        let mut free: Vec<_> = view
            .eligible(job.model.as_deref())
            .into_iter()
            .filter(|w| !exclude.contains(&w.id) && by_id.contains_key(&w.id))
            .cloned()
            .collect();
        let mut started = Vec::new();
        while started.len() < want {
            free.retain(|w| w.free_slots() > 0);
            let Some(best) =
                free.iter_mut().max_by(|a, b| a.expected_speed().total_cmp(&b.expected_speed()))
            else {
                break;
            };
            let worker = by_id[&best.id].clone();
            match worker.submit(req.sample(first_sample + started.len() as u64)) {
                Ok(stream) => {
                    best.queue_depth += 1;
                    started.push(Started { worker, stream });
                }
                Err(e) => {
                    tracing::debug!(worker = %best.id, error = %e, "worker refused a sample");
                    best.queue_depth = best.slots;
                }
            }
        }
        started
    }
}

/// Whether some untried worker would take the job once it has a free slot.
fn any_busy(view: &ClusterView, job: &Job, tried: &Tried) -> bool {
    view.workers.iter().any(|w| {
        !tried.contains(&w.id) && view.check(w, job.model.as_deref()) == Err(Ineligible::Busy)
    })
}

pub(super) fn describe_no_capacity(
    view: &ClusterView,
    model: Option<&str>,
    tried: &Tried,
) -> String {
    let (mut stale, mut paused, mut busy, mut asked) = (0, 0, 0, 0);
    for w in &view.workers {
        if tried.contains(&w.id) {
            asked += 1;
            continue;
        }
        match view.check(w, model) {
            Err(Ineligible::Stale) => stale += 1,
            Err(Ineligible::Paused) => paused += 1,
            Err(Ineligible::Busy) => busy += 1,
            _ => {}
        }
    }
    if view.workers.is_empty() {
        "no workers have joined".into()
    } else if asked > 0 {
        format!("{stale} stale, {paused} paused, {busy} busy, {asked} already asked")
    } else {
        format!("{stale} stale, {paused} paused, {busy} busy")
    }
}

impl Inner {
    /// Starts `req` on worker `id` itself (a council member's own turn), waiting until `until`
    /// while it is busy. Fails at once if it left, went stale or paused.
    pub(crate) async fn start_on(
        &self,
        job: &Job,
        id: &str,
        req: &ValidRequest,
        until: Instant,
    ) -> Result<Started, InferError> {
        loop {
            let capacity = self.capacity.notified();
            {
                let _one_at_a_time = lock(&self.dispatch);
                let view = self.view();
                let gone = || InferError::Failed { message: format!("worker {id} is gone") };
                let w = view.workers.iter().find(|w| w.id == id).ok_or_else(gone)?;
                match view.check(w, job.model.as_deref()) {
                    Ok(()) | Err(Ineligible::Busy) => {}
                    Err(why) => {
                        return Err(InferError::Failed {
                            message: format!("worker {id} cannot take work: {why:?}"),
                        })
                    }
                }
                let worker = lock(&self.workers).iter().find(|w| w.id() == id).cloned();
                let worker = worker.ok_or_else(gone)?;
                match worker.submit(req.clone()) {
                    Ok(stream) => return Ok(Started { worker, stream }),
                    Err(e) => tracing::debug!(worker = %id, error = %e, "member busy; waiting"),
                }
            }
            let now = Instant::now();
            if now >= until {
                return Err(InferError::Overloaded { retry_after_s: 1 });
            }
            tokio::select! {
                () = capacity => {}
                () = tokio::time::sleep(POLL.min(until - now)) => {}
            }
        }
    }
}
