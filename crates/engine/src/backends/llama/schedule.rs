//! Continuous batching on the engine thread: each step admits queued requests into free
//! sequences, then evaluates one token of every generating sequence, one token of every
//! resumed answer being replayed, and as much of the waiting prompts as the batch has room for,
//! all in one `llama_decode`, and samples each sequence whose logits are ready.
//!
//! A long prompt thus delays running streams by at most one batch a step. Sequences go into the
//! batch in increasing sequence id: with a KV stream per sequence llama.cpp splits a batch into
//! runs of consecutive ids, so keeping them in order keeps a step to as few passes as possible.

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, mpsc as std_mpsc, Arc},
    time::{Duration, Instant},
};

use llama_cpp_2::{context::LlamaContext, llama_batch::LlamaBatch, model::LlamaModel};
use nova_proto::ValidRequest;

use super::{
    bench::{BenchReport, BenchSpec},
    embed::{Embedder, Pending},
    prepare::prepare,
    slot::{Feed, Follow, Slot, Tx},
    Job, Shared,
};
use crate::EngineError;

/// The shape of the context the scheduler fills.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Sequences in the context.
    pub(super) slots: u32,
    /// Each sequence's window.
    pub(super) n_ctx_seq: u32,
    /// Most tokens in one decode.
    pub(super) n_batch: u32,
    /// The embedding context's shape.
    pub(super) embed: EmbedLimits,
}

/// The shape of the embedding context, created on the first embedding request.
#[derive(Debug, Clone, Copy)]
pub(super) struct EmbedLimits {
    /// Most tokens of one input.
    pub(super) window: u32,
    /// Tokens evaluated in one call.
    pub(super) chunk: u32,
    /// Threads it evaluates with.
    pub(super) threads: u32,
}

pub(super) struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    limits: Limits,
    shared: &'m Shared,
    /// Indexed by sequence id.
    slots: Vec<Option<Slot>>,
    batch: LlamaBatch<'static>,
    /// Requests admitted so far: each slot's serial.
    admitted: u64,
    /// The shards holding layers of a split model (none when it runs whole here).
    shards: Vec<Arc<nova_rpc::Link>>,
    /// Set once a shard is lost: the model cannot compute any more and the engine stops.
    lost: Option<EngineError>,
    /// The model's name, which embeddings carry.
    name: String,
    /// Embedding requests, oldest first; the first advances a chunk per turn.
    embeds: VecDeque<Pending>,
    /// The embedding context, once an embedding was asked for.
    embedder: Option<Embedder<'m>>,
}

/// Shortest prompt prefix worth copying from another sequence rather than evaluating: a copy
/// moves the donor's whole KV stream (llama.cpp copies across streams only whole), which costs
/// about as much as evaluating a few dozen tokens of a small model.
const MIN_SHARED_PREFIX: usize = 32;

/// How long a step with nothing to evaluate (every consumer lagging) waits before looking again.
const LAGGING_POLL: Duration = Duration::from_millis(2);

impl<'m> Scheduler<'m> {
    pub(super) fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        limits: Limits,
        shared: &'m Shared,
        shards: Vec<Arc<nova_rpc::Link>>,
        name: String,
    ) -> Self {
        Self {
            shards,
            lost: None,
            name,
            embeds: VecDeque::new(),
            embedder: None,
            model,
            ctx,
            limits,
            shared,
            slots: (0..limits.slots).map(|_| None).collect(),
            batch: LlamaBatch::new(limits.n_batch.max(1) as usize, 1),
            admitted: 0,
        }
    }

    /// Serves `jobs` until the queue closes and the running requests have ended. A benchmark
    /// runs between two steps; running streams pause meanwhile.
    pub(super) fn run(
        &mut self,
        jobs: &std_mpsc::Receiver<Job>,
        bench: impl Fn(&BenchSpec) -> Result<BenchReport, EngineError>,
    ) -> Option<EngineError> {
        while self.lost.is_none() && self.admit(jobs, &bench) {
            self.step();
            self.embed_step();
        }
        let lost = self.lost.take();
        let why = lost.clone().unwrap_or(EngineError::Shutdown);
        while let Some(job) = self.embeds.pop_front() {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            job.finish(Some(why.clone()));
        }
        lost
    }

    /// Advances the oldest embedding request by one chunk, creating the embedding context
    /// first if this is the first request; a finished or failed request is answered.
    fn embed_step(&mut self) {
        let Some(job) = self.embeds.front_mut() else { return };
        let outcome = if self.shared.shutdown.load(Ordering::Relaxed) {
            Err(EngineError::Shutdown)
        } else if job.cancelled() {
            tracing::debug!(task = %job.id().fmt_short(), "embedding cancelled");
            Err(EngineError::Shutdown)
        } else {
            self.shared.busy.store(true, Ordering::SeqCst);
            let e = self.limits.embed;
            let embedder = match self.embedder.take() {
                Some(x) => Ok(x),
                None => Embedder::new(self.model, e.window, e.chunk, e.threads),
            };
            embedder.and_then(|mut x| {
                let r = x.advance(job);
                self.embedder = Some(x);
                r
            })
        };
        match outcome {
            Ok(false) => return,
            Ok(true) => {}
            Err(ref e) => {
                tracing::debug!(task = %job.id().fmt_short(), error = %e, "embedding failed");
            }
        }
        // The books are settled before the reply goes, so a client that sends again on its
        // reply finds the capacity it just gave back.
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let job = self.embeds.pop_front();
        let busy = self.running() > 0 || !self.embeds.is_empty();
        self.shared.busy.store(busy, Ordering::SeqCst);
        if let Some(job) = job {
            job.finish(outcome.err());
        }
    }

    /// Takes an embedding request into the queue, or refuses it at once (an input too long).
    fn start_embed(&mut self, req: nova_proto::EmbedRequest, reply: super::embed::Reply) {
        let window = self.limits.embed.window;
        match Pending::new(self.model, &self.name, req, window, reply) {
            Ok(job) => {
                self.embeds.push_back(job);
                self.shared.busy.store(true, Ordering::SeqCst);
            }
            Err((e, reply)) => {
                self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = reply.send(Err(e));
            }
        }
    }

    /// After a decode: a lost shard means its part of this decode was stand-in zeros, so
    /// nothing from it may be sampled. Every running request ends with the reason.
    fn shard_lost(&mut self) -> bool {
        let Some((name, why)) =
            self.shards.iter().find_map(|l| l.lost().map(|w| (l.name().to_owned(), w)))
        else {
            return false;
        };
        let e = EngineError::Unavailable(format!(
            "shard {name}, which holds layers of this model, was lost ({why}); the split model \
             is unloaded"
        ));
        for seq in 0..self.slots.len() {
            if let Some(slot) = self.slots[seq].as_mut() {
                slot.fail(e.clone());
                self.deliver(seq);
            }
        }
        self.lost = Some(e);
        true
    }

    fn running(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Takes queued jobs into free sequences; blocks for one when none is running. False when
    /// the queue has closed and nothing runs.
    fn admit(
        &mut self,
        jobs: &std_mpsc::Receiver<Job>,
        bench: &impl Fn(&BenchSpec) -> Result<BenchReport, EngineError>,
    ) -> bool {
        while let Some(seq) = self.slots.iter().position(Option::is_none) {
            let job = if self.running() == 0 && self.embeds.is_empty() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return false,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    // A closed queue still lets the running requests finish (or notice the
                    // shutdown).
                    Err(_) => return true,
                }
            };
            match job {
                Job::Generate { req, tx } => self.start(seq, req, tx),
                Job::Embed { req, reply } => self.start_embed(req, reply),
                Job::Bench { spec, reply } => {
                    self.shared.busy.store(true, Ordering::SeqCst);
                    let _ = reply.send(bench(&spec));
                    self.shared.busy.store(self.running() > 0, Ordering::SeqCst);
                    self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        true
    }

    fn start(&mut self, seq: usize, req: ValidRequest, tx: Tx) {
        let slot = prepare(self.model, &req, self.limits.n_ctx_seq).and_then(|prepared| {
            Slot::new(self.model, self.admitted + 1, &req, prepared, tx.clone())
        });
        let mut slot = match slot {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(task = %req.id.fmt_short(), error = %e, "request refused");
                // A fresh channel always has room for one event.
                let _ = tx.try_send(Err(e));
                self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        // Whatever a previous request left in these cells is not this one's.
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.admitted += 1;
        slot.follow = self.donor(&slot);
        if let Some(f) = slot.follow {
            tracing::debug!(task = %req.id.fmt_short(), shared = f.len, "sharing a prompt prefix");
        }
        self.slots[seq] = Some(slot);
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        self.shared.busy.store(true, Ordering::SeqCst);
    }

    /// Hands a slot's events to its consumer and frees it once all are out. The books are
    /// settled before the last event goes: a request stops counting as in flight when its
    /// answer is complete, not when its cells are cleared, so a client that submits again on
    /// `Done` always finds the capacity it just gave back.
    fn deliver(&mut self, seq: usize) {
        let Some(slot) = self.slots[seq].as_mut() else { return };
        if slot.finished() && !slot.released {
            slot.released = true;
            release(self.shared);
        }
        slot.flush();
        if slot.done() {
            self.free(seq);
        }
    }

    /// The running sequence that shares the longest prompt prefix with `slot` (several samples
    /// of one prompt), if that prefix is worth a copy. The last prompt token is always left for
    /// `slot` to evaluate: its logits are the first token's.
    fn donor(&self, slot: &Slot) -> Option<Follow> {
        let own = &slot.tokens()[..slot.n_prompt().saturating_sub(1)];
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(seq, s)| Some((seq, s.as_ref().filter(|s| s.live())?)))
            .map(|(seq, s)| {
                let len = own.iter().zip(s.tokens()).take_while(|(a, b)| a == b).count();
                Follow { seq, serial: s.serial, len }
            })
            .filter(|f| f.len >= MIN_SHARED_PREFIX)
            .max_by_key(|f| f.len)
    }

    /// Copies shared prefixes whose donors have evaluated them; a follower whose donor is gone
    /// evaluates its whole prompt.
    fn copy_prefixes(&mut self) {
        for seq in 0..self.slots.len() {
            let Some(f) = self.slots[seq].as_ref().and_then(|s| s.follow) else { continue };
            let donor = self.slots[f.seq].as_ref().filter(|d| d.serial == f.serial);
            let ready = match donor {
                None => false,
                Some(d) if d.pos >= f.len => true,
                Some(_) => continue,
            };
            let (src, dst) = (f.seq as i32, seq as i32);
            let copied = ready
                && self.ctx.copy_kv_cache_seq(src, dst, None, None).is_ok()
                && self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(f.len as u32), None).is_ok();
            let Some(slot) = self.slots[seq].as_mut() else { continue };
            slot.follow = None;
            if copied {
                slot.pos = f.len;
            } else {
                // Half-done copies leave nothing usable: start from an empty sequence.
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            }
        }
    }

    fn free(&mut self, seq: usize) {
        if let Some(slot) = self.slots[seq].take() {
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            if !slot.released {
                release(self.shared);
            }
        }
    }

    /// One decode for every sequence that has something to evaluate.
    fn step(&mut self) {
        let shutdown = self.shared.shutdown.load(Ordering::Relaxed);
        for seq in 0..self.slots.len() {
            let Some(slot) = self.slots[seq].as_mut() else { continue };
            if shutdown || slot.cancelled() {
                tracing::debug!(task = %slot.id.fmt_short(), "generation cancelled");
                self.free(seq);
                continue;
            }
            self.deliver(seq);
        }
        if self.running() == 0 {
            return;
        }
        self.copy_prefixes();
        // (sequence, tokens added, batch index of the logits to sample from)
        let mut fed: Vec<(usize, usize, Option<i32>)> = Vec::with_capacity(self.slots.len());
        let prompts = match self.fill(&mut fed) {
            Ok(prompts) => prompts,
            Err(e) => return self.fail(&fed, e),
        };
        if fed.is_empty() {
            std::thread::sleep(LAGGING_POLL);
            return;
        }
        let started = Instant::now();
        let decoded = self.ctx.decode(&mut self.batch);
        if self.shard_lost() {
            return;
        }
        if let Err(e) = decoded {
            return self.fail(&fed, EngineError::Decode(e.to_string()));
        }
        for &(seq, n, logits) in &fed {
            let Some(slot) = self.slots[seq].as_mut() else { continue };
            slot.evaluated(n);
            if let Some(idx) = logits.filter(|_| slot.ready_to_sample()) {
                slot.sample(self.model, &self.ctx, idx, self.limits.n_ctx_seq);
                self.deliver(seq);
            }
        }
        // A step of single tokens is what each stream's speed is made of: one token each per
        // step. Steps that also evaluate prompts would mix in prompt work.
        if !prompts {
            self.shared.record_step(fed.len(), started.elapsed());
        }
    }

    /// Puts this step's tokens in the batch: one for each sequence past its prompt, and the
    /// room left for prompts, first come (lowest id) first served. True when prompt tokens
    /// went in.
    fn fill(&mut self, fed: &mut Vec<(usize, usize, Option<i32>)>) -> Result<bool, EngineError> {
        let add_err =
            |e: llama_cpp_2::llama_batch::BatchAddError| EngineError::Decode(e.to_string());
        self.batch.clear();
        let singles =
            self.slots.iter().flatten().filter(|s| matches!(s.feed(), Feed::One(_))).count();
        let mut prompt_room = (self.limits.n_batch as usize).saturating_sub(singles);
        let mut prompts = false;
        for (seq, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let seq_id = [seq as i32];
            match slot.feed() {
                Feed::Nothing => {}
                Feed::One(t) => {
                    self.batch.add(t, slot.pos as i32, &seq_id, true).map_err(add_err)?;
                    fed.push((seq, 1, Some(self.batch.n_tokens() - 1)));
                }
                Feed::Prompt { rest } => {
                    let n = rest.len().min(prompt_room);
                    if n == 0 {
                        continue;
                    }
                    prompt_room -= n;
                    self.shared.prompt_evaluated.fetch_add(n as u64, Ordering::Relaxed);
                    let mut logits = None;
                    for (i, &t) in rest[..n].iter().enumerate() {
                        let pos = slot.pos + i;
                        let want = i + 1 == n && slot.wants_logits(pos);
                        self.batch.add(t, pos as i32, &seq_id, want).map_err(add_err)?;
                        if want {
                            logits = Some(self.batch.n_tokens() - 1);
                        }
                    }
                    fed.push((seq, n, logits));
                    prompts = true;
                }
            }
        }
        Ok(prompts)
    }

    /// A failed decode leaves the cells of everything in the batch unknown: those requests end.
    fn fail(&mut self, fed: &[(usize, usize, Option<i32>)], e: EngineError) {
        for &(seq, _, _) in fed {
            if let Some(slot) = self.slots[seq].as_mut() {
                slot.fail(e.clone());
                self.deliver(seq);
            }
        }
    }
}

/// A request's answer is complete: it no longer counts as running or in flight.
fn release(shared: &Shared) {
    let left = shared.running.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
    shared.busy.store(left > 0, Ordering::SeqCst);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
}
