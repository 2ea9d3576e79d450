//! LAN discovery: a gateway and a worker in two network namespaces joined by a veth pair find
//! each other by mDNS with no address given. The namespaces are private to the test, so no
//! multicast reaches the host's network; they are deleted on drop.

use std::{
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{home, nova, run, spawn_cmd, stderr, Proc};

const TOKEN: &str = "lan-token";
const SECRET: &str = "lan-secret-for-tests";

/// A network namespace, deleted (with its interfaces) on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces linked by a veth pair, `10.77.<n>.1` and `.2`, with loopback up in each.
/// Processes must be dropped before the namespaces.
fn lan() -> Result<(Netns, Netns), String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}x{n}", std::process::id());
    let (a, b) = (Netns(format!("nova-{id}-a")), Netns(format!("nova-{id}-b")));
    ip(&["netns", "add", &a.0])?;
    ip(&["netns", "add", &b.0])?;
    // Interface names are limited to 15 bytes.
    let (va, vb) = (format!("nv{id}a"), format!("nv{id}b"));
    let (va, vb) = (&va[..va.len().min(15)], &vb[..vb.len().min(15)]);
    ip(&["link", "add", va, "netns", &a.0, "type", "veth", "peer", "name", vb, "netns", &b.0])?;
    let subnet = n % 250;
    let (addr_a, addr_b) = (format!("10.77.{subnet}.1"), format!("10.77.{subnet}.2"));
    for (ns, dev, addr) in [(&a.0, va, &addr_a), (&b.0, vb, &addr_b)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok((a, b))
}

/// `nova ARGS` inside namespace `ns`.
fn spawn_in(ns: &Netns, args: &[&str]) -> Proc {
    let home = home();
    let cmd = nova(home.path());
    let mut wrapped = Command::new("ip");
    wrapped.args(["netns", "exec", &ns.0]).arg(cmd.get_program()).args(args);
    wrapped.env_clear().envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    spawn_cmd(wrapped, home)
}

/// `curl` inside namespace `ns`, where the gateway's loopback API lives.
fn curl_in(ns: &Netns, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "curl", "-sS", "--max-time", "60"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("curl output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// `nova_p2p_refused_connections_total` from the gateway's metrics.
fn refused(ns: &Netns, url: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "curl", "-sS", "--max-time", "10"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}"), &format!("{url}/metrics")])
        .output()
        .expect("curl metrics");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("nova_p2p_refused_connections_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn workers_find_the_gateway_by_mdns_between_namespaces() {
    let (gw_ns, wk_ns) = match lan() {
        Ok(l) => l,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: cannot create network namespaces here ({e}); CI runs this as root");
            return;
        }
        Err(e) => panic!("cannot create network namespaces: {e}"),
    };
    let gateway = spawn_in(
        &gw_ns,
        &[
            "serve",
            "--lan",
            "--bind",
            "127.0.0.1:8787",
            "--no-local",
            "--token",
            TOKEN,
            "--secret",
            SECRET,
            "--stale-after-ms",
            "1500",
        ],
    );
    let url = gateway.wait_for("nova gateway listening on ");
    let hint = gateway.wait_for("add a device on this LAN with: ");
    // The hint names a file for the secret, never the secret itself.
    assert!(hint.starts_with("nova worker --lan --secret-file "), "{hint}");
    assert!(!hint.contains(SECRET), "{hint}");

    let worker_args = |secret: &'static str| {
        [
            "worker",
            "--lan",
            "--secret",
            secret,
            "--no-pull",
            "--model",
            "smollm2-135m",
            "--heartbeat-ms",
            "500",
        ]
    };
    let worker = spawn_in(&wk_ns, &worker_args(SECRET));
    assert_eq!(worker.wait_for("worker ").split(" joining ").nth(1), Some("a gateway on the LAN"));
    // Same LAN, other swarm: it finds the gateway by mDNS too, but the swarm key refuses it.
    let outsider = spawn_in(&wk_ns, &worker_args("some-other-swarm"));
    outsider.wait_for("worker ");

    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let v = curl_in(&gw_ns, &[&format!("{url}/v1/swarm")]);
        let ready = v["workers"].as_array().map(|w| w.len()).unwrap_or(0);
        if ready >= 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "no worker joined by mDNS within 60 s: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    // The outsider finds the gateway by mDNS too; wait until its attempt has been refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused(&gw_ns, &url) == 0 {
        assert!(Instant::now() < deadline, "the outsider was never refused within 30 s");
        std::thread::sleep(Duration::from_millis(300));
    }
    let v = curl_in(&gw_ns, &[&format!("{url}/v1/swarm")]);
    let workers = v["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "only the worker with the secret joins: {v} (first view {view})");
    assert_eq!(workers[0]["state"], "ready", "{v}");

    let answer = curl_in(
        &gw_ns,
        &[
            &format!("{url}/v1/chat/completions"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"model":"nova","temperature":0,"max_tokens":24,
                "messages":[{"role":"user","content":"What is the capital of France?"}]}"#,
        ],
    );
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("Paris"), "{answer}");
    let winner = answer["nova"]["winner"].as_str().unwrap_or_default().to_string();
    assert_eq!(winner, workers[0]["worker"]["id"].as_str().unwrap_or_default(), "{answer}");
    drop(outsider);
    drop(worker);
    drop(gateway);
}

#[test]
fn lan_discovery_is_refused_on_loopback() {
    let home = home();
    for args in [
        &["worker", "--lan", "--listen", "/ip4/127.0.0.1/tcp/0", "--secret", "s", "--no-pull"][..],
        &[
            "serve",
            "--lan",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-local",
            "--bind",
            "127.0.0.1:0",
        ][..],
    ] {
        let out = run(nova(home.path()).args(args), Duration::from_secs(60));
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(err.contains("LAN discovery needs a non-loopback listen address"), "{err}");
    }
}
