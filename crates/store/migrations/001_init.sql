CREATE TABLE IF NOT EXISTS nodes (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    models        TEXT NOT NULL,          -- JSON array
    tokens_per_s  REAL NOT NULL,
    free_ram_mb   INTEGER,
    cores         INTEGER,
    battery_pct   REAL,
    charging      INTEGER,
    temperature_c REAL,
    paused        INTEGER NOT NULL,
    queue_depth   INTEGER NOT NULL,
    queue_capacity INTEGER NOT NULL,
    version       TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS win_rates (
    worker TEXT NOT NULL,
    tag    TEXT NOT NULL,
    wins   REAL NOT NULL,
    trials REAL NOT NULL,
    at_ms  INTEGER NOT NULL,
    PRIMARY KEY (worker, tag)
);

CREATE TABLE IF NOT EXISTS requests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    strategy   TEXT NOT NULL,
    model      TEXT,
    outcome    TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    ttft_ms    REAL,
    tokens     INTEGER NOT NULL,
    winner     TEXT
);
CREATE INDEX IF NOT EXISTS requests_at ON requests(at_ms);
