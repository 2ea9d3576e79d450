//! Federated retrieval in process: a [`GatewayNode`] and [`WorkerNode`]s over real p2p on
//! 127.0.0.1, scripted engines, and in-memory document sets behind the `KnowledgeBase` port
//! (the real SQLite index is exercised by the binary's `it rag::` and `it knowledge::` tests).
//! What is checked: who is asked, how answers merge, that a slow node is skipped at the
//! deadline, that passages reach the prompt and come back as sources, and that nothing is
//! retrieved without `rag`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use nova_api::{Inference, Job, JobEvent, JobResult};
use nova_engine::{Script, ScriptedEngine};
use nova_node::{EngineSpec, GatewayConfig, GatewayNode, KnowledgeBase, WorkerNode};
use nova_proto::{
    knowledge::{
        tokens, CorpusStats, KnowledgeHit, KnowledgeQuery, KnowledgeReply, KnowledgeSummary,
    },
    ChatMessage, Limits, Prompt, SamplingParams, Strategy, TaskId, ValidRequest,
};

mod common;

const SECRET: &str = "knowledge-secret";

/// Documents held in memory, searched by counting terms: enough to produce replies with
/// the statistics the gateway merges. `delay` makes it a slow node.
#[derive(Debug)]
struct Docs {
    docs: Vec<(String, String)>,
    delay: Duration,
}

impl Docs {
    fn new(docs: &[(&str, &str)]) -> Arc<Self> {
        Self::slow(docs, Duration::ZERO)
    }

    fn slow(docs: &[(&str, &str)], delay: Duration) -> Arc<Self> {
        let docs = docs.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect();
        Arc::new(Self { docs, delay })
    }
}

impl KnowledgeBase for Docs {
    fn search(&self, q: &KnowledgeQuery) -> Result<KnowledgeReply, String> {
        std::thread::sleep(self.delay);
        let terms = nova_proto::knowledge::query_terms(&q.query);
        let tf = |text: &str| -> Vec<u32> {
            let toks: Vec<String> = tokens(text).collect();
            terms.iter().map(|t| toks.iter().filter(|x| *x == t).count() as u32).collect()
        };
        let mut hits: Vec<KnowledgeHit> = self
            .docs
            .iter()
            .map(|(path, text)| KnowledgeHit {
                path: path.clone(),
                chunk: 0,
                text: text.clone(),
                len: tokens(text).count() as u32,
                tf: tf(text),
            })
            .filter(|h| h.tf.iter().any(|&n| n > 0))
            .collect();
        hits.sort_by_key(|h| std::cmp::Reverse(h.tf.iter().sum::<u32>()));
        hits.truncate(q.k as usize);
        let df = terms
            .iter()
            .enumerate()
            .map(|(i, _)| self.docs.iter().filter(|(_, t)| tf(t)[i] > 0).count() as u64)
            .collect();
        let stats = CorpusStats {
            chunks: self.docs.len() as u64,
            tokens: self.docs.iter().map(|(_, t)| tokens(t).count() as u64).sum(),
            terms,
            df,
        };
        Ok(KnowledgeReply { stats, hits })
    }

    fn summary(&self) -> KnowledgeSummary {
        KnowledgeSummary { files: self.docs.len() as u64, chunks: self.docs.len() as u64 }
    }
}

/// Answers from the passage it is given: a prompt that contains the owner's line names them.
fn reader(model: &str) -> EngineSpec {
    let script = Script::Keyed(vec![
        ("maintained by Odile Varga".into(), Script::Fixed("Odile Varga [1]".into())),
        ("".into(), Script::Fixed("I do not know.".into())),
    ]);
    let engine = ScriptedEngine::new(model, script, Duration::from_millis(1));
    EngineSpec::Ready(Arc::new(engine), Some(10.0))
}

async fn gateway(
    knowledge: Option<Arc<dyn KnowledgeBase>>,
    retrieval_timeout: Duration,
) -> GatewayNode {
    let config = GatewayConfig { retrieval_timeout, ..GatewayConfig::default() };
    let knowledge = knowledge.map(|k| ("gw".to_string(), k));
    GatewayNode::spawn(common::gateway_node_config(SECRET, config, reader("m"), knowledge))
        .await
        .expect("gateway starts")
}

async fn worker(
    gw: &GatewayNode,
    name: &str,
    knowledge: Option<Arc<dyn KnowledgeBase>>,
) -> WorkerNode {
    WorkerNode::spawn(common::worker_node_config(gw, SECRET, name, reader("m"), knowledge))
        .await
        .expect("worker starts")
}

async fn wait_members(gw: &GatewayNode, n: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    while gw.gateway().swarm().workers.len() < n {
        assert!(Instant::now() < until, "workers never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One more heartbeat, so the status that says what each worker shares has arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn job(question: &str, rag: bool) -> Job {
    let params = SamplingParams { temperature: 0.0, max_tokens: 32, ..SamplingParams::default() };
    let prompt = Prompt::Chat(vec![ChatMessage::user(question)]);
    Job {
        request: ValidRequest::new(TaskId(9), prompt, params, &Limits::default()).expect("valid"),
        model: None,
        strategy: Strategy::Race,
        fanout: 1,
        tags: Vec::new(),
        debug: false,
        stream: false,
        deadline: Duration::from_secs(20),
        rag,
    }
}

async fn ask(gw: &GatewayNode, job: Job) -> JobResult {
    let mut rx = gw.gateway().run(job).await.expect("job starts");
    loop {
        match rx.recv().await.expect("an end") {
            JobEvent::Done(r) => return *r,
            JobEvent::Error(e) => panic!("job failed: {e}"),
            _ => {}
        }
    }
}

const OWNER: &str = "The ZX-4471 controller is maintained by Odile Varga.";
const QUESTION: &str = "Who maintains the ZX-4471 controller?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_on_one_worker_grounds_the_answer_and_is_cited() {
    let gw = gateway(
        Some(Docs::new(&[("gw-notes/controllers.md", "Controllers are maintained by the lab.")])),
        Duration::from_secs(2),
    )
    .await;
    let b = worker(
        &gw,
        "b",
        Some(Docs::new(&[
            ("b-wiki/zx.md", OWNER),
            ("b-wiki/recipes.md", "Pancakes need two eggs."),
        ])),
    )
    .await;
    let c = worker(&gw, "c", None).await;
    wait_members(&gw, 3).await;

    let r = ask(&gw, job(QUESTION, true)).await;
    assert!(r.text.contains("Odile Varga"), "grounded answer: {}", r.text);
    let retrieval = r.trace.retrieval.as_ref().expect("a retrieval trace");
    assert_eq!(retrieval.asked, 2, "the gateway's own index and b; c shares nothing");
    assert_eq!(retrieval.answered, 2);
    assert!(retrieval.skipped.is_empty());
    let first = r.sources.first().expect("sources");
    assert_eq!((first.n, first.node.as_str(), first.path.as_str()), (1, "b", "b-wiki/zx.md"));
    assert!(r.sources.iter().all(|s| s.path != "b-wiki/recipes.md"), "{:?}", r.sources);
    // Scores are ranked across nodes.
    assert!(r.sources.windows(2).all(|w| w[0].score >= w[1].score));

    // Without `rag` nothing is retrieved and the model does not know.
    let r = ask(&gw, job(QUESTION, false)).await;
    assert_eq!(r.text, "I do not know.");
    assert!(r.trace.retrieval.is_none() && r.sources.is_empty());

    b.shutdown().await;
    c.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_is_skipped_at_the_deadline_and_the_rest_answer() {
    let gw = gateway(None, Duration::from_millis(400)).await;
    let slow =
        worker(&gw, "slow", Some(Docs::slow(&[("s/x.md", OWNER)], Duration::from_secs(2)))).await;
    let fast = worker(&gw, "fast", Some(Docs::new(&[("f/zx.md", OWNER)]))).await;
    wait_members(&gw, 3).await;

    let t0 = Instant::now();
    let r = ask(&gw, job(QUESTION, true)).await;
    let took = t0.elapsed();
    let retrieval = r.trace.retrieval.as_ref().expect("a retrieval trace");
    assert_eq!((retrieval.asked, retrieval.answered), (2, 1));
    assert!(retrieval.skipped[0].starts_with("slow:"), "{:?}", retrieval.skipped);
    assert!(retrieval.latency_ms < 1500.0, "retrieval waited {} ms", retrieval.latency_ms);
    assert!(took < Duration::from_secs(3), "the answer waited for the slow node: {took:?}");
    assert_eq!(r.sources[0].node, "fast");
    assert!(r.text.contains("Odile Varga"));

    slow.shutdown().await;
    fast.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nobody_sharing_a_grounded_request_still_answers_and_says_so() {
    let gw = gateway(None, Duration::from_secs(1)).await;
    let r = ask(&gw, job(QUESTION, true)).await;
    let retrieval = r.trace.retrieval.as_ref().expect("a retrieval trace");
    assert_eq!((retrieval.asked, retrieval.hits), (0, 0));
    assert!(r.sources.is_empty());
    assert_eq!(r.text, "I do not know.");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_passages_that_fit_the_window_are_cited() {
    // A scripted engine with a 400-token window (by its 3-bytes-a-token estimate) and four
    // passages of ~600 bytes: only the first fits beside the question and the answer's room.
    let long = |i: usize| format!("{OWNER} {}", format!("filler{i} ").repeat(70));
    let docs: Vec<(String, String)> = (0..4).map(|i| (format!("d/{i}.md"), long(i))).collect();
    let docs: Vec<(&str, &str)> = docs.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let engine = ScriptedEngine::new("m", Script::Fixed("ok".into()), Duration::from_millis(1))
        .with_n_ctx(400);
    let engine = EngineSpec::Ready(Arc::new(engine), Some(10.0));
    let knowledge = Some(("gw".to_string(), Docs::new(&docs) as Arc<dyn KnowledgeBase>));
    let gateway = GatewayConfig { rag_k: 4, ..GatewayConfig::default() };
    let config = common::gateway_node_config(SECRET, gateway, engine, knowledge);
    let gw = GatewayNode::spawn(config).await.expect("gateway starts");
    let r = ask(&gw, job(QUESTION, true)).await;
    assert_eq!(r.trace.retrieval.as_ref().map(|t| t.hits), Some(4));
    assert_eq!(r.usage.context_used, 1);
    assert_eq!(r.sources.len(), 1);
    gw.shutdown().await;
}
