//! `nova chat` driven in a pseudo-terminal (issue 14, item 10), by tests/pty/chat.py: commands,
//! a streamed answer, lines joined with `\` and `"""` blocks, Ctrl-C stopping an answer and
//! clearing the prompt, `/exit`; against this node's engine and against a gateway.

use std::time::Duration;

fn drive(home: &std::path::Path, extra: &[&str]) {
    let script = crate::web::root().join("tests/pty/chat.py");
    let out = crate::run(
        std::process::Command::new("python3")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_nova"))
            .args(extra)
            .env("NOVA_HOME", home)
            .env("NOVA_THREADS", "2"),
        Duration::from_secs(600),
    );
    let transcript = crate::stdout(&out);
    println!("{transcript}");
    assert!(out.status.success(), "{transcript}{}", crate::stderr(&out));
}

#[test]
fn chat_with_the_local_engine_in_a_terminal() {
    let home = crate::home();
    drive(home.path(), &["local"]);
    // The input history survives the session, in the data dir.
    let history = std::fs::read_to_string(home.path().join("chat-history")).expect("history");
    assert!(history.contains("What is the capital of France?"), "{history}");
}

#[test]
fn chat_with_the_swarm_through_a_gateway_in_a_terminal() {
    let (_g, url, join) = crate::spawn_gateway("chat-token", "chat-secret", &[]);
    let _w1 = crate::swarm_worker(&join, "chat-secret", "w1", &[]);
    let _w2 = crate::swarm_worker(&join, "chat-secret", "w2", &[]);
    let home = crate::home();
    drive(home.path(), &["gateway", &url, "chat-token"]);
}
