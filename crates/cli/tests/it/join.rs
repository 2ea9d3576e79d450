//! What a worker's terminal says about joining (issue 14, friction 2 and 3): joined, lost and
//! rejoined lines, and join failures told apart, each with what to do.

use std::{
    path::Path,
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const SECRET: &str = "join-secret";

/// A `nova` process whose stdout and stderr lines arrive on one channel, in its own data dir
/// or one the test keeps (to start a gateway again with the same key).
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watched {
    fn start(home: &Path, args: &[&str]) -> Watched {
        let mut child = crate::nova(home)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nova");
        let lines = crate::output_lines(&mut child);
        Watched { child, lines, seen: Vec::new() }
    }

    /// The first line from now on containing `text`, within 60 s.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return line;
                }
            }
        }
        panic!("no line containing {text:?} within 60 s; saw: {:#?}", self.seen);
    }

    /// Waits for the process to exit; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(200));
                self.seen.extend(self.lines.try_iter());
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("still running after 60 s; saw: {:#?}", self.seen);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn gateway(home: &Path, api: u16, p2p: u16) -> Watched {
    let (api, p2p) = (format!("127.0.0.1:{api}"), format!("/ip4/127.0.0.1/tcp/{p2p}"));
    let mut g = Watched::start(
        home,
        &[
            "serve",
            "--bind",
            &api,
            "--p2p-listen",
            &p2p,
            "--no-local",
            "--token",
            "t",
            "--secret",
            SECRET,
        ],
    );
    g.wait_for("p2p listening on ");
    g
}

fn worker(home: &Path, join: &str, secret: &str) -> Watched {
    let mut w = Watched::start(home, &crate::worker_args(join, secret, "w"));
    w.wait_for("joining ");
    w
}

#[test]
fn a_worker_says_when_it_joins_loses_and_rejoins_its_gateway() {
    let (gateway_home, worker_home) = (crate::home(), crate::home());
    let (api, p2p) = (free_port(), free_port());
    let join = format!("127.0.0.1:{p2p}");
    let g = gateway(gateway_home.path(), api, p2p);
    let mut w = worker(worker_home.path(), &join, SECRET);
    let joined = w.wait_for("joined the gateway ");
    println!("{joined}");

    // The gateway goes away: the worker says so, then why it cannot join meanwhile.
    drop(g);
    println!("{}", w.wait_for("lost the gateway"));
    println!("{}", w.wait_for("cannot join yet: nothing listens at"));

    // Back with the same key and port: the worker says it rejoined that same gateway.
    let _g = gateway(gateway_home.path(), api, p2p);
    let rejoined = w.wait_for("rejoined the gateway ");
    println!("{rejoined}");
    let id = joined.rsplit(' ').next().unwrap();
    assert!(rejoined.contains(id), "rejoined another gateway: {rejoined} vs {joined}");
}

#[test]
fn join_failures_say_what_is_wrong_and_what_to_do() {
    let gateway_home = crate::home();
    let (api, p2p) = (free_port(), free_port());
    let _g = gateway(gateway_home.path(), api, p2p);
    let cases = [
        (format!("127.0.0.1:{p2p}"), "another-secret", "the swarm secret differs"),
        (format!("127.0.0.1:{api}"), SECRET, "answers HTTP: that is the gateway's API port"),
        (format!("127.0.0.1:{}", free_port()), SECRET, "nothing listens at"),
    ];
    for (join, secret, says) in cases {
        let home = crate::home();
        let mut w = worker(home.path(), &join, secret);
        println!("{}", w.wait_for(says));
        // Said once, not at every retry.
        std::thread::sleep(Duration::from_secs(2));
        w.seen.extend(w.lines.try_iter());
        let times = w.seen.iter().filter(|l| l.contains(says)).count();
        assert_eq!(times, 1, "{says:?} said {times} times: {:#?}", w.seen);
        assert!(w.child.try_wait().unwrap().is_none(), "a worker that may yet join gave up");
    }

    // Started on the gateway's own data dir, a worker has the gateway's key: it stops at once
    // and says to give it another data dir.
    let mut w = Watched::start(
        gateway_home.path(),
        &crate::worker_args(&format!("127.0.0.1:{p2p}"), SECRET, "same"),
    );
    let code = w.exit_code();
    assert_eq!(code, Some(1), "{:#?}", w.seen);
    let said = w.seen.iter().find(|l| l.contains("share a data dir")).cloned();
    let said = said.unwrap_or_else(|| panic!("no advice: {:#?}", w.seen));
    println!("{said}");
    assert!(said.contains("--data-dir"), "{said}");
}

#[tokio::test]
async fn nodes_on_one_machine_get_distinct_default_names() {
    let (_g, url, join) = crate::spawn_gateway("t", SECRET, &[]);
    let args = |join| {
        vec!["worker", "--join", join, "--secret", SECRET, "--no-pull", "--model", "smollm2-135m"]
    };
    let _a = crate::spawn(1, &args(&join));
    let _b = crate::spawn(1, &args(&join));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let names = loop {
        let view = crate::swarm_view(&url, "t").await;
        let names: Vec<String> = view["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["worker"]["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        if names.len() == 2 {
            break names;
        }
        assert!(Instant::now() < deadline, "two workers never joined: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("{names:?}");
    assert_ne!(names[0], names[1], "two nodes of one machine share a name");
    for n in &names {
        let suffix = n.strip_prefix(&format!("{host}-")).unwrap_or_else(|| panic!("{n}"));
        assert_eq!(suffix.len(), 6, "{n}");
    }
}
