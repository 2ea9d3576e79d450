//! Planning a split of one model's transformer layers across the swarm ("pooling").
//!
//! The *head* (the gateway) keeps the token embeddings, the output projection (tied to the
//! embeddings in our models), the final norm and the first [`SplitPlan::head_layers`] layers;
//! each *shard* (a worker, reached over llama.cpp's RPC backend) holds a contiguous range of the
//! layers that follow, in order. [`plan`] decides who holds what from the bytes each layer needs
//! ([`SplitNeeds`]) and the RAM each device offers (`--max-ram`, in its heartbeats).
//!
//! The rules:
//!
//! 1. The head holds `other + head_overhead` and as many of the first layers as fit in its offer,
//!    a layer costing its weights plus `kv_per_layer`. When the whole model fits there is no
//!    shard at all: every shard adds a network round trip to each token, so small models run
//!    fastest unsplit.
//! 2. Otherwise the fewest shards are chosen: paused devices, devices offering nothing and
//!    devices without a finite speed are skipped, the rest are taken largest offer first (ties:
//!    faster, then smaller id), each holding as many of the remaining layers as fit in its offer
//!    after `shard_overhead`. Every shard holds at least one layer; at most `max_shards` are
//!    used (llama.cpp allows 16 devices, the head is one).
//! 3. The chosen shards are then ordered fastest first (ties: smaller id) and the layers
//!    assigned again in that order, so the fastest device fills up first and the slowest holds
//!    what is left. If that order does not fit (layers differ in size, so a different order can
//!    strand one), the largest-offer order, which did fit, is kept.
//! 4. When the layers cannot all be placed, [`SplitRefusal`] says how much is needed and how
//!    much is offered, by whom.
//!
//! The greedy choice is not an exact bin packing, and does not need to be: layers of one model
//! are close in size, and a device is either used to its offer or not at all.
//!
//! Work is bounded: only the first [`MAX_CANDIDATES`] candidates are looked at (the rest are
//! ignored, so callers should not pass devices they would not use), and a model of more than
//! [`MAX_LAYERS`] layers is refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Candidates looked at; the ones after are ignored. Far more than a swarm of small devices
/// has, and llama.cpp uses at most 16 devices anyway.
pub const MAX_CANDIDATES: usize = 256;

/// Layers a plan places at most; GGUF headers with more are refused when read.
pub const MAX_LAYERS: usize = 4096;

const MIB: u64 = 1 << 20;

/// Devices a refusal's message names; the others are counted, so the message stays readable.
const LISTED_DEVICES: usize = 12;

/// Names longer than this are cut in a refusal's message: they come from the devices.
const MAX_NAME_CHARS: usize = 64;

/// A worker that could hold a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The worker's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// RAM it offers for shards, in MiB (`--max-ram`).
    pub offer_mb: u64,
    /// Its measured generation speed, tokens per second.
    pub tokens_per_s: f64,
    /// Whether it is paused (then it is never chosen).
    pub paused: bool,
}

/// What a model needs, in bytes, to be split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitNeeds {
    /// Weight bytes of each transformer layer, in order.
    pub layers: Vec<u64>,
    /// Weight bytes of everything outside the layers (embeddings, output, final norm), all on
    /// the head.
    pub other: u64,
    /// KV cache bytes of one layer for the whole context:
    /// `kv_bytes_per_token_per_layer * n_ctx * parallel`.
    pub kv_per_layer: u64,
    /// Bytes the head needs beyond weights and KV cache (compute buffers and the like).
    pub head_overhead: u64,
    /// Bytes each shard needs beyond weights and KV cache.
    pub shard_overhead: u64,
}

/// Who holds which layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Layers `0..head_layers` stay on the head.
    pub head_layers: u32,
    /// The shards in layer order: the first starts at `head_layers`, each next one where the
    /// previous one ends. Empty when the head holds the whole model.
    pub shards: Vec<PlannedShard>,
}

/// One shard of a [`SplitPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedShard {
    /// The worker's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The first layer it holds.
    pub first_layer: u32,
    /// How many layers it holds (at least 1).
    pub layers: u32,
    /// Bytes it needs: its layers' weights and KV cache plus the shard overhead.
    pub bytes: u64,
}

/// Why a model cannot be split across the devices offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRefusal {
    /// MiB the whole model needs, rounded up: weights, KV cache, the head's overhead and one
    /// shard overhead per shard. Approximate: the shard count is a lower bound (the shards the
    /// attempt used, plus one when layers were left over).
    pub needed_mb: u64,
    /// MiB offered by the head and the usable candidates (paused, zero-offer and speedless
    /// ones are not counted).
    pub offered_mb: u64,
    /// Each device looked at, as the message shows it: `head 60 MiB`, `w2 40 MiB, paused`.
    pub devices: Vec<String>,
    /// What exactly did not fit.
    pub detail: String,
}

impl fmt::Display for SplitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the model needs about {} MiB to split across the swarm and {} MiB are offered (",
            self.needed_mb, self.offered_mb
        )?;
        for (i, device) in self.devices.iter().take(LISTED_DEVICES).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(device)?;
        }
        if self.devices.len() > LISTED_DEVICES {
            write!(f, "; and {} more", self.devices.len() - LISTED_DEVICES)?;
        }
        write!(f, "): {}; add devices or raise --max-ram", self.detail)
    }
}

impl std::error::Error for SplitRefusal {}

/// Plans the split of a model needing `needs` over a head offering `head_offer_mb` MiB and
/// `candidates`, with at most `max_shards` shards. See the [module](self) for the rules.
pub fn plan(
    needs: &SplitNeeds,
    head_offer_mb: u64,
    candidates: &[Candidate],
    max_shards: usize,
) -> Result<SplitPlan, SplitRefusal> {
    let considered = &candidates[..candidates.len().min(MAX_CANDIDATES)];
    let usable: Vec<&Candidate> = considered.iter().filter(|c| is_usable(c)).collect();
    let usable_count = usable.len();
    let offered_mb = usable.iter().fold(head_offer_mb, |sum, c| sum.saturating_add(c.offer_mb));
    let refusal = |shards: usize, detail: String| SplitRefusal {
        needed_mb: needed_bytes(needs, shards).div_ceil(MIB),
        offered_mb,
        devices: describe(head_offer_mb, considered),
        detail,
    };
    let n = needs.layers.len();
    if n > MAX_LAYERS {
        return Err(refusal(
            1,
            format!("it has {n} layers, more than the {MAX_LAYERS} a split places"),
        ));
    }
    let cost: Vec<u64> =
        needs.layers.iter().map(|w| w.saturating_add(needs.kv_per_layer)).collect();

    let head_cap = head_offer_mb.saturating_mul(MIB);
    let head_fixed = needs.other.saturating_add(needs.head_overhead);
    let head_layers = head_cap.checked_sub(head_fixed).map_or(0, |budget| fill(&cost, 0, budget));
    if head_fixed <= head_cap && head_layers == n {
        return Ok(SplitPlan { head_layers: n as u32, shards: Vec::new() });
    }

    // Largest offers first: for any number of shards, the largest offers hold the most layers,
    // so the first set that holds them all is (up to layer granularity) the smallest.
    let mut by_offer = usable;
    by_offer.sort_by(|a, b| {
        b.offer_mb
            .cmp(&a.offer_mb)
            .then(b.tokens_per_s.total_cmp(&a.tokens_per_s))
            .then(a.id.cmp(&b.id))
    });
    let by_offer = &by_offer[..by_offer.len().min(max_shards)];
    let (placed, next) = assign(&cost, head_layers, needs.shard_overhead, by_offer);
    let shards_needed = placed.len() + usize::from(next < n);

    if head_fixed > head_cap {
        return Err(refusal(
            shards_needed,
            format!(
                "the head alone needs {} MiB for the embeddings, output, final norm and its buffers",
                head_fixed.div_ceil(MIB)
            ),
        ));
    }
    if next < n {
        let left = layer_range(next, n - 1);
        let are = if next == n - 1 { "is" } else { "are" };
        // Devices are tried largest first, so the first one left unused could not take the
        // next layer, and neither could any smaller one.
        let detail = if placed.len() == max_shards && usable_count > max_shards {
            format!(
                "{left} {are} left once the {max_shards} largest devices are full, and at most \
                 {max_shards} shards are allowed"
            )
        } else if let Some(stuck) = by_offer.get(placed.len()) {
            format!(
                "layer {next} needs {} MiB on a shard and the largest device left ({}) offers {} MiB",
                cost[next].saturating_add(needs.shard_overhead).div_ceil(MIB),
                display_name(stuck),
                stuck.offer_mb
            )
        } else {
            format!("{left} {are} left with no device to hold them")
        };
        return Err(refusal(shards_needed, detail));
    }

    // The set is fixed; now its fastest members take the layers first, so the slowest device
    // holds the fewest layers and each token spends the least time on slow hardware.
    let mut by_speed: Vec<&Candidate> = placed.iter().map(|s| s.0).collect();
    by_speed.sort_by(|a, b| b.tokens_per_s.total_cmp(&a.tokens_per_s).then(a.id.cmp(&b.id)));
    let (fast, fast_next) = assign(&cost, head_layers, needs.shard_overhead, &by_speed);
    let chosen = if fast_next == n { fast } else { placed };

    let mut first = head_layers;
    let shards = chosen
        .into_iter()
        .map(|(c, layers, bytes)| {
            let shard = PlannedShard {
                id: c.id.clone(),
                name: c.name.clone(),
                first_layer: first as u32,
                layers: layers as u32,
                bytes,
            };
            first += layers;
            shard
        })
        .collect();
    Ok(SplitPlan { head_layers: head_layers as u32, shards })
}

/// `layer 3` or `layers 3-9`.
fn layer_range(first: usize, last: usize) -> String {
    if first == last {
        format!("layer {first}")
    } else {
        format!("layers {first}-{last}")
    }
}

fn is_usable(c: &Candidate) -> bool {
    !c.paused && c.offer_mb > 0 && c.tokens_per_s.is_finite()
}

/// How many layers from `start` fit in `budget` bytes.
fn fill(cost: &[u64], start: usize, budget: u64) -> usize {
    let mut used = 0u64;
    cost[start..]
        .iter()
        .take_while(|&&c| {
            used = used.saturating_add(c);
            used <= budget
        })
        .count()
}

/// Gives the layers from `start` to `devices` in order, each taking as many as fit. A device
/// that cannot take the next layer is left out rather than given none: every shard costs a
/// round trip. Returns the shards (device, layers, bytes) and the first layer left unplaced.
fn assign<'a>(
    cost: &[u64],
    start: usize,
    overhead: u64,
    devices: &[&'a Candidate],
) -> (Vec<(&'a Candidate, usize, u64)>, usize) {
    let mut shards = Vec::new();
    let mut next = start;
    for &c in devices {
        if next == cost.len() {
            break;
        }
        let Some(budget) = c.offer_mb.saturating_mul(MIB).checked_sub(overhead) else { continue };
        let took = fill(cost, next, budget);
        if took > 0 {
            let bytes = cost[next..next + took].iter().fold(overhead, |s, &l| s.saturating_add(l));
            shards.push((c, took, bytes));
            next += took;
        }
    }
    (shards, next)
}

/// Everything the model needs with `shards` shards.
fn needed_bytes(needs: &SplitNeeds, shards: usize) -> u64 {
    let layers = needs.layers.iter().fold(0u64, |s, &w| s.saturating_add(w));
    let kv = needs.kv_per_layer.saturating_mul(needs.layers.len() as u64);
    let overheads = needs.shard_overhead.saturating_mul(shards as u64);
    [needs.other, needs.head_overhead, layers, kv, overheads]
        .into_iter()
        .fold(0u64, u64::saturating_add)
}

fn describe(head_offer_mb: u64, considered: &[Candidate]) -> Vec<String> {
    let mut devices = vec![format!("head {head_offer_mb} MiB")];
    devices.extend(considered.iter().map(|c| {
        let why_not = if c.paused {
            ", paused"
        } else if c.offer_mb > 0 && !c.tokens_per_s.is_finite() {
            ", no speed measured"
        } else {
            ""
        };
        format!("{} {} MiB{why_not}", display_name(c), c.offer_mb)
    }));
    devices
}

fn display_name(c: &Candidate) -> String {
    let name = if c.name.is_empty() { &c.id } else { &c.name };
    name.chars().take(MAX_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    use super::*;

    fn cand(id: &str, offer_mb: u64, tokens_per_s: f64) -> Candidate {
        Candidate { id: id.into(), name: id.into(), offer_mb, tokens_per_s, paused: false }
    }

    /// `n` layers of `layer_mb` MiB of weights and 1 MiB of KV cache each; 20 MiB outside the
    /// layers, 4 MiB of head overhead and 2 MiB per shard.
    fn needs(n: usize, layer_mb: u64) -> SplitNeeds {
        SplitNeeds {
            layers: vec![layer_mb * MIB; n],
            other: 20 * MIB,
            kv_per_layer: MIB,
            head_overhead: 4 * MIB,
            shard_overhead: 2 * MIB,
        }
    }

    fn shards(p: &SplitPlan) -> Vec<(&str, u32, u32)> {
        p.shards.iter().map(|s| (s.id.as_str(), s.first_layer, s.layers)).collect()
    }

    #[test]
    fn a_model_that_fits_on_the_head_is_not_split() {
        // 24 MiB fixed + 4 layers of 11 MiB = 68 MiB.
        let p = plan(&needs(4, 10), 68, &[cand("w1", 1000, 50.0)], 15).unwrap();
        assert_eq!(p, SplitPlan { head_layers: 4, shards: vec![] });
        let p = plan(&needs(0, 10), 24, &[], 15).unwrap();
        assert_eq!(p.head_layers, 0);
    }

    #[test]
    fn one_shard_takes_what_the_head_cannot() {
        // The head holds 24 MiB fixed + 2 layers; 2 layers of 11 MiB + 2 MiB go to a shard.
        let p = plan(&needs(4, 10), 50, &[cand("w1", 24, 10.0)], 15).unwrap();
        assert_eq!(p.head_layers, 2);
        assert_eq!(shards(&p), vec![("w1", 2, 2)]);
        assert_eq!(p.shards[0].bytes, 24 * MIB);
        assert!(plan(&needs(4, 10), 50, &[cand("w1", 23, 10.0)], 15).is_err());
    }

    #[test]
    fn the_fewest_shards_are_chosen_fastest_first() {
        // The head holds 2 layers, 4 are left (46 MiB with one overhead). One big slow device
        // beats two fast small ones.
        let cands = [cand("small1", 30, 90.0), cand("big", 50, 5.0), cand("small2", 30, 80.0)];
        let p = plan(&needs(6, 10), 50, &cands, 15).unwrap();
        assert_eq!(shards(&p), vec![("big", 2, 4)]);

        // 8 are left: slow-big holds 5, fast 3, so tiny is not needed; fast takes first.
        let cands = [cand("slow-big", 60, 5.0), cand("fast", 40, 50.0), cand("tiny", 13, 99.0)];
        let p = plan(&needs(10, 10), 50, &cands, 15).unwrap();
        assert_eq!(shards(&p), vec![("fast", 2, 3), ("slow-big", 5, 5)]);
    }

    #[test]
    fn the_offer_order_is_kept_when_the_speed_order_strands_a_layer() {
        let needs = SplitNeeds { layers: vec![12 * MIB, 12 * MIB, 6 * MIB], ..Default::default() };
        // By speed, fast (10 MiB) cannot take layer 0, slow takes 0-1 and layer 2 is left.
        let cands = [cand("fast", 10, 50.0), cand("slow", 24, 5.0)];
        let p = plan(&needs, 0, &cands, 15).unwrap();
        assert_eq!(shards(&p), vec![("slow", 0, 2), ("fast", 2, 1)]);
    }

    #[test]
    fn paused_idle_and_unmeasured_devices_are_skipped() {
        let mut paused = cand("paused", 500, 99.0);
        paused.paused = true;
        let cands = [
            paused,
            cand("zero", 0, 99.0),
            cand("nan", 500, f64::NAN),
            cand("inf", 500, f64::INFINITY),
            cand("ok", 24, 1.0),
        ];
        let p = plan(&needs(4, 10), 50, &cands, 15).unwrap();
        assert_eq!(shards(&p), vec![("ok", 2, 2)]);
    }

    #[test]
    fn a_refusal_names_the_numbers_and_the_devices() {
        let mut w2 = cand("w2", 40, 9.0);
        w2.paused = true;
        let cands = [cand("w1", 50, 10.0), w2];
        let err = plan(&needs(16, 10), 60, &cands, 15).unwrap_err();
        // 24 + 16 * 11 = 200 MiB, plus 2 shard overheads (w1 and one more).
        assert_eq!(err.needed_mb, 204);
        assert_eq!(err.offered_mb, 110);
        let msg = err.to_string();
        assert_eq!(
            msg,
            "the model needs about 204 MiB to split across the swarm and 110 MiB are offered \
             (head 60 MiB; w1 50 MiB; w2 40 MiB, paused): layers 7-15 are left with no device to \
             hold them; \
             add devices or raise --max-ram"
        );

        let err = plan(&needs(4, 100), 30, &[cand("w1", 90, 1.0)], 15).unwrap_err();
        assert!(err.detail.contains("layer 0 needs 103 MiB"), "{err}");
        assert!(err.detail.contains("(w1) offers 90 MiB"), "{err}");

        let err = plan(&needs(3, 10), 50, &[], 15).unwrap_err();
        assert_eq!(err.detail, "layer 2 is left with no device to hold them");

        let err = plan(&needs(4, 10), 20, &[cand("w1", 1000, 1.0)], 15).unwrap_err();
        assert!(err.detail.contains("the head alone needs 24 MiB"), "{err}");
        assert_eq!(err.needed_mb, 24 + 44 + 2);
    }

    #[test]
    fn at_most_max_shards_are_used() {
        // 6 layers of 11 MiB are left and each device holds 2.
        let cands: Vec<_> = (0..5).map(|i| cand(&format!("w{i}"), 24, 10.0)).collect();
        let p = plan(&needs(8, 10), 50, &cands, 3).unwrap();
        assert_eq!(shards(&p), vec![("w0", 2, 2), ("w1", 4, 2), ("w2", 6, 2)]);
        let err = plan(&needs(8, 10), 50, &cands, 2).unwrap_err();
        assert_eq!(
            err.detail,
            "layers 6-7 are left once the 2 largest devices are full, and at most 2 shards are \
             allowed"
        );
        assert!(plan(&needs(8, 10), 50, &cands, 0).is_err());
    }

    #[test]
    fn ties_are_broken_by_id_whatever_the_input_order() {
        let a =
            [cand("b", 24, 10.0), cand("c", 24, 10.0), cand("a", 24, 10.0), cand("d", 24, 10.0)];
        let mut b = a.clone();
        b.reverse();
        let (pa, pb) = (plan(&needs(8, 10), 50, &a, 15), plan(&needs(8, 10), 50, &b, 15));
        assert_eq!(pa, pb);
        assert_eq!(shards(&pa.unwrap()), vec![("a", 2, 2), ("b", 4, 2), ("c", 6, 2)]);
        // Equal offers: the faster is chosen.
        let c = [cand("a", 24, 1.0), cand("b", 24, 2.0)];
        assert_eq!(shards(&plan(&needs(4, 10), 50, &c, 15).unwrap()), vec![("b", 2, 2)]);
    }

    #[test]
    fn too_many_layers_are_refused() {
        let err = plan(&needs(MAX_LAYERS + 1, 1), 1 << 30, &[], 15).unwrap_err();
        assert!(err.detail.contains("4097 layers"), "{err}");
        assert!(plan(&needs(MAX_LAYERS, 1), 1 << 30, &[], 15).is_ok());
    }

    #[test]
    fn ten_thousand_candidates_stay_fast_and_bounded() {
        let mut cands: Vec<_> = (0..10_000).map(|i| cand(&format!("w{i:05}"), 1, 1.0)).collect();
        // Past the first MAX_CANDIDATES: ignored, however large.
        cands[9_999].offer_mb = 1 << 40;
        let t = Instant::now();
        let err = plan(&needs(4000, 10), 50, &cands, 15).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(err.devices.len(), 1 + MAX_CANDIDATES);
        assert_eq!(err.offered_mb, 50 + MAX_CANDIDATES as u64);
        assert!(err.to_string().len() < 1000, "{err}");
        assert!(err.to_string().contains("and 245 more"), "{err}");

        cands[0].offer_mb = 1 << 20;
        let p = plan(&needs(4000, 10), 50, &cands, 15).unwrap();
        assert_eq!(shards(&p), vec![("w00000", 2, 3998)]);
    }

    proptest! {
        #[test]
        fn every_plan_places_each_layer_once_within_offers(
            layers in proptest::collection::vec(1u64..20, 0..60),
            offers in proptest::collection::vec((0u64..300, 0u32..100, proptest::bool::ANY), 0..12),
            head_offer_mb in 0u64..200,
            max_shards in 0usize..6,
        ) {
            let needs = SplitNeeds {
                layers: layers.iter().map(|l| l * MIB).collect(),
                other: 10 * MIB,
                kv_per_layer: MIB / 2,
                head_overhead: 3 * MIB,
                shard_overhead: MIB,
            };
            let cands: Vec<_> = offers
                .iter()
                .enumerate()
                .map(|(i, &(offer_mb, tps, paused))| Candidate {
                    paused,
                    ..cand(&format!("w{i}"), offer_mb, f64::from(tps))
                })
                .collect();
            let result = plan(&needs, head_offer_mb, &cands, max_shards);
            prop_assert_eq!(&result, &plan(&needs, head_offer_mb, &cands, max_shards));
            let Ok(p) = result else { return Ok(()) };
            let cost = |range: std::ops::Range<usize>| -> u64 {
                needs.layers[range].iter().map(|w| w + needs.kv_per_layer).sum()
            };
            let head_layers = p.head_layers as usize;
            prop_assert!(cost(0..head_layers) + 13 * MIB <= head_offer_mb * MIB);
            prop_assert!(p.shards.len() <= max_shards);
            let mut next = head_layers;
            let mut ids = std::collections::HashSet::new();
            for s in &p.shards {
                prop_assert_eq!(s.first_layer as usize, next);
                prop_assert!(s.layers >= 1);
                let end = next + s.layers as usize;
                prop_assert_eq!(s.bytes, cost(next..end) + needs.shard_overhead);
                let c = cands.iter().find(|c| c.id == s.id).unwrap();
                prop_assert!(is_usable(c) && s.bytes <= c.offer_mb * MIB);
                prop_assert!(ids.insert(&s.id));
                next = end;
            }
            prop_assert_eq!(next, layers.len());
            if p.shards.is_empty() {
                prop_assert_eq!(head_layers, layers.len());
            }
        }
    }
}
