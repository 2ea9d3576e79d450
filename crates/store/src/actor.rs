//! The store actor: owns the connection, applies commands, batches writes.

use std::path::Path;

use nova_proto::NodeStatus;
use nova_router::winrate::Record;
use rusqlite::{params, Connection, OptionalExtension as _};
use tokio::sync::mpsc;

use crate::{Command, NodeRecord, RequestRecord, StoreError};

const MIGRATIONS: &[&str] = &[include_str!("../migrations/001_init.sql")];

/// Most writes committed in one transaction.
const BATCH: usize = 256;

/// Writes between two prunings of the tables that grow with use.
const PRUNE_EVERY: usize = 1024;

pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    crate::private::create_private(path)
        .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
    let conn = Connection::open(path)?;
    // WAL lets readers (e.g. `sqlite3` by hand) look while the node writes; NORMAL sync is
    // durable across crashes of the process, which is what a registry needs.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&conn)?;
    prune(&conn)?;
    // SQLite gives its -wal and -shm files the database's mode, so they are already private;
    // files left by an older version that made them 0644 are tightened here.
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        crate::private::restrict(Path::new(&side))
            .map_err(|e| StoreError::Io(Path::new(&side).display().to_string(), e))?;
    }
    Ok(conn)
}

pub(crate) fn open_in_memory() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    Ok(())
}

pub(crate) fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>) {
    let mut since_prune = 0;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        since_prune += batch.len();
        if let Err(e) = apply(&mut conn, batch) {
            tracing::error!(error = %e, "store write failed; the batch was not saved");
        }
        if since_prune >= PRUNE_EVERY {
            since_prune = 0;
            if let Err(e) = prune(&conn) {
                tracing::error!(error = %e, "store pruning failed");
            }
        }
    }
}

/// Keeps the tables that grow with use within their bounds: the newest win rates (the same
/// bound as the gateway's table), the newest request log rows, the most recently seen nodes.
pub(crate) fn prune(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM win_rates WHERE rowid NOT IN
            (SELECT rowid FROM win_rates ORDER BY at_ms DESC LIMIT ?1)",
        params![crate::MAX_WIN_RATES as i64],
    )?;
    conn.execute(
        "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?1",
        params![crate::MAX_REQUESTS as i64],
    )?;
    conn.execute(
        "DELETE FROM nodes WHERE id NOT IN
            (SELECT id FROM nodes ORDER BY last_seen_ms DESC LIMIT ?1)",
        params![crate::MAX_NODES as i64],
    )?;
    Ok(())
}

/// Applies a batch: writes in one transaction, then answers the reads (which therefore see
/// every write sent before them).
fn apply(conn: &mut Connection, batch: Vec<Command>) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let mut reads = Vec::new();
    for cmd in batch {
        match cmd {
            Command::UpsertNode(n) => upsert_node(&tx, &n)?,
            Command::RemoveNode(id) => {
                tx.execute("DELETE FROM nodes WHERE id = ?1", params![id])?;
            }
            Command::SaveWinRates(records) => {
                for r in records {
                    tx.execute(
                        "INSERT INTO win_rates (worker, tag, wins, trials, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(worker, tag) DO UPDATE SET wins = ?3, trials = ?4, at_ms = ?5",
                        params![r.worker, r.tag, r.wins, r.trials, r.at_ms as i64],
                    )?;
                }
            }
            Command::DeleteWinRates(keys) => {
                for (worker, tag) in keys {
                    tx.execute(
                        "DELETE FROM win_rates WHERE worker = ?1 AND tag = ?2",
                        params![worker, tag],
                    )?;
                }
            }
            Command::LogRequest(r) => {
                tx.execute(
                    "INSERT INTO requests (at_ms, strategy, model, outcome, latency_ms, ttft_ms, tokens, winner)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![r.at_ms as i64, r.strategy, r.model, r.outcome, r.latency_ms, r.ttft_ms, r.tokens, r.winner],
                )?;
            }
            read => reads.push(read),
        }
    }
    tx.commit()?;
    for read in reads {
        match read {
            Command::Nodes(reply) => {
                let _ = reply.send(nodes(conn));
            }
            Command::WinRates(reply) => {
                let _ = reply.send(win_rates(conn));
            }
            Command::RecentRequests(n, reply) => {
                let _ = reply.send(recent(conn, n));
            }
            Command::Flush(reply) => {
                let _ = reply.send(());
            }
            _ => {}
        }
    }
    Ok(())
}

fn upsert_node(tx: &rusqlite::Transaction<'_>, n: &NodeRecord) -> Result<(), StoreError> {
    let s = &n.status;
    let models = serde_json::to_string(&s.models).unwrap_or_else(|_| "[]".into());
    let first: Option<i64> = tx
        .query_row("SELECT first_seen_ms FROM nodes WHERE id = ?1", params![n.id], |r| r.get(0))
        .optional()?;
    tx.execute(
        "INSERT OR REPLACE INTO nodes (id, name, models, tokens_per_s, free_ram_mb, cores, battery_pct,
            charging, temperature_c, paused, queue_depth, queue_capacity, version, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            n.id,
            s.name,
            models,
            s.tokens_per_s,
            s.free_ram_mb.map(|v| v as i64),
            s.cores,
            s.battery_pct,
            s.charging,
            s.temperature_c,
            s.paused,
            s.queue_depth,
            s.queue_capacity,
            s.version,
            first.unwrap_or(n.first_seen_ms as i64),
            n.last_seen_ms as i64,
        ],
    )?;
    Ok(())
}

fn nodes(conn: &Connection) -> Result<Vec<NodeRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, models, tokens_per_s, free_ram_mb, cores, battery_pct, charging, temperature_c,
                paused, queue_depth, queue_capacity, version, first_seen_ms, last_seen_ms
         FROM nodes ORDER BY first_seen_ms, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let models: String = r.get(2)?;
        Ok(NodeRecord {
            id: r.get(0)?,
            status: NodeStatus {
                name: r.get(1)?,
                models: serde_json::from_str(&models).unwrap_or_default(),
                tokens_per_s: r.get(3)?,
                free_ram_mb: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                cores: r.get(5)?,
                battery_pct: r.get(6)?,
                charging: r.get(7)?,
                temperature_c: r.get(8)?,
                paused: r.get(9)?,
                queue_depth: r.get(10)?,
                queue_capacity: r.get(11)?,
                version: r.get(12)?,
                knowledge: None,
                slots: None,
                pool_offer_mb: None,
            },
            first_seen_ms: r.get::<_, i64>(13)? as u64,
            last_seen_ms: r.get::<_, i64>(14)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn win_rates(conn: &Connection) -> Result<Vec<Record>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT worker, tag, wins, trials, at_ms FROM win_rates ORDER BY at_ms DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![crate::MAX_WIN_RATES as i64], |r| {
        Ok(Record {
            worker: r.get(0)?,
            tag: r.get(1)?,
            wins: r.get(2)?,
            trials: r.get(3)?,
            at_ms: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn recent(conn: &Connection, n: usize) -> Result<Vec<RequestRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at_ms, strategy, model, outcome, latency_ms, ttft_ms, tokens, winner
         FROM requests ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![n as i64], |r| {
        Ok(RequestRecord {
            at_ms: r.get::<_, i64>(0)? as u64,
            strategy: r.get(1)?,
            model: r.get(2)?,
            outcome: r.get(3)?,
            latency_ms: r.get(4)?,
            ttft_ms: r.get(5)?,
            tokens: r.get(6)?,
            winner: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
