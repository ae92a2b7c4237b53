-- agentgate initial schema. Portable between SQLite and PostgreSQL:
-- times are BIGINT unix microseconds UTC, money BIGINT micro-cents,
-- booleans BOOLEAN (SQLite stores 0/1), JSON and ciphertext TEXT.
-- {{autoincrement_pk}} is the only dialect macro (see migrate.go).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX workspaces_owner_slug_key ON workspaces (owner_id, slug);

CREATE TABLE mcp_servers (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    slug            TEXT NOT NULL,
    name            TEXT NOT NULL,
    transport       TEXT NOT NULL,
    url             TEXT NOT NULL DEFAULT '',
    headers         TEXT NOT NULL DEFAULT '{}', -- JSON object: name -> encrypted value
    operator_server TEXT NOT NULL DEFAULT '',
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX mcp_servers_workspace_slug_key ON mcp_servers (workspace_id, slug);

CREATE TABLE endpoints (
    id                  TEXT PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slug                TEXT NOT NULL,
    name                TEXT NOT NULL,
    workspace_id        TEXT REFERENCES workspaces (id) ON DELETE SET NULL,
    system_prompt       TEXT NOT NULL,
    description         TEXT,
    agent_type          TEXT NOT NULL,
    llm_provider        TEXT NOT NULL,
    llm_model           TEXT NOT NULL,
    llm_base_url        TEXT,
    llm_api_key         TEXT NOT NULL DEFAULT '', -- encrypted, '' = none
    max_tokens          INTEGER NOT NULL,
    temperature         DOUBLE PRECISION NOT NULL,
    output_format       TEXT NOT NULL,
    output_schema       TEXT,
    input_schema        TEXT,
    max_tool_calls      INTEGER NOT NULL,
    timeout_ms          INTEGER NOT NULL,
    enable_streaming    BOOLEAN NOT NULL,
    async_mode          BOOLEAN NOT NULL,
    auth_mode           TEXT NOT NULL,
    price_per_run_cents INTEGER NOT NULL,
    rate_limit_per_min  INTEGER,
    api_key_hash        TEXT NOT NULL,
    status              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    deleted_at          BIGINT
);
-- Slugs are unique among live endpoints only: a deleted endpoint frees its slug.
CREATE UNIQUE INDEX endpoints_live_slug_key ON endpoints (slug) WHERE deleted_at IS NULL;
CREATE INDEX endpoints_owner_created_idx ON endpoints (owner_id, created_at);
CREATE INDEX endpoints_workspace_idx ON endpoints (workspace_id);

-- runs.endpoint_id has no foreign key on purpose: run-log writes are batched
-- and must never be lost because of an ordering problem elsewhere.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    endpoint_id         TEXT NOT NULL,
    owner_id            TEXT NOT NULL,
    status              TEXT NOT NULL,
    input               TEXT NOT NULL DEFAULT '',
    output              TEXT NOT NULL DEFAULT '',
    tool_calls          TEXT NOT NULL DEFAULT '[]',
    error_code          TEXT NOT NULL DEFAULT '',
    error_message       TEXT NOT NULL DEFAULT '',
    tokens_input        BIGINT NOT NULL DEFAULT 0,
    tokens_output       BIGINT NOT NULL DEFAULT 0,
    cost_micro_cents    BIGINT NOT NULL DEFAULT 0,
    latency_ms          BIGINT NOT NULL DEFAULT 0,
    ttft_ms             BIGINT NOT NULL DEFAULT 0,
    iterations          INTEGER NOT NULL DEFAULT 0,
    charged_micro_cents BIGINT NOT NULL DEFAULT 0,
    async               BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    finished_at         BIGINT
);
CREATE INDEX runs_endpoint_created_idx ON runs (endpoint_id, created_at, id);
CREATE INDEX runs_owner_created_idx ON runs (owner_id, created_at, id);
CREATE INDEX runs_running_idx ON runs (created_at) WHERE status = 'running';

CREATE TABLE run_events (
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_events_created_idx ON run_events (created_at);

-- wallets caches the ledger sums per user and is the row a money
-- transaction locks; the ledger is the truth.
CREATE TABLE wallets (
    user_id               TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance_micro_cents   BIGINT NOT NULL DEFAULT 0,
    deposited_micro_cents BIGINT NOT NULL DEFAULT 0,
    spent_micro_cents     BIGINT NOT NULL DEFAULT 0,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE ledger (
    id                 {{autoincrement_pk}},
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind               TEXT NOT NULL,
    amount_micro_cents BIGINT NOT NULL,
    run_id             TEXT NOT NULL DEFAULT '',
    key                TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_key_key ON ledger (key);
CREATE INDEX ledger_user_idx ON ledger (user_id, id);
