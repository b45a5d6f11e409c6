-- returnflow.conf.lua: the settings of `returnflow serve` (and of `returnflow post`, for the secret).
--
-- A Lua file that returns one table. It is yours and trusted: it runs in a plain Lua state, so it may
-- compute values (os.getenv, string.format, ...). Every setting below is optional except `tenants`;
-- the values written here are the defaults unless said otherwise. Relative paths are taken from this
-- file's folder, not from where the command runs. An unknown key is an error, so a typo cannot
-- silently fall back to a default; every problem is reported at start-up, with where and why.
--
-- Secrets (a webhook secret, a Klaviyo key) are written inline, or better read from the
-- environment, { env = "NAME" }, or from a file, { file = "PATH" } (its trailing newline is
-- stripped). They are never logged and never written back.
return {
  listen = "127.0.0.1:8787",     -- HOST:PORT the webhook endpoint listens on ("0.0.0.0:8787": every interface)
  data = "data",                 -- durable store: raw events, outbox, dead letters, dry-run output
  workers = 0,                   -- mapping threads; 0 = one per CPU core
  retention_days = 30,           -- raw events are kept this long, so a changed mapping can be replayed
  max_body = 1048576,            -- largest webhook body accepted, in bytes (larger: 413)
  max_connections = 1024,        -- client connections open at once, at most

  timeouts = {                   -- seconds; a slow or idle client cannot hold a connection
    header = 10,                 -- to receive a request's headers
    body = 30,                   -- to receive its body
    idle = 60,                   -- a keep-alive connection may stay idle between requests
  },

  delivery = {
    max_age_hours = 72,          -- a request is retried (429, 5xx, timeouts) for at most this long
    backoff_max_seconds = 300,   -- the longest wait between two tries of a request: full-jitter backoff
                                 -- doubling with the attempts it has had (a bulk job's rows, each its own;
                                 -- a 429 waits at least what it asks)
    timeout_seconds = 30,        -- Klaviyo's answer to a request; past it, the try counts and it goes again
    bulk_timeout_seconds = 120,  -- the same for a bulk job (up to 5 MB and 1,000 events)
    connect_timeout_seconds = 10,
  },

  store = {
    check_seconds = 10,          -- serve's start check of the store (its log, then its pages) stops after
                                 -- this; `returnflow store check` runs a whole one (docs/operations.md)
    -- url: a PostgreSQL database instead of the SQLite file in `data`, shared by several nodes
    -- (docs/store.md). A secret, as it may hold a password: inline, { env = "NAME" } or
    -- { file = "PATH" }; logged only as postgresql://HOST:PORT/DB. Absent (the default): SQLite.
    -- url = { env = "RETURNFLOW_STORE_URL" },   -- e.g. postgresql://returnflow:PASSWORD@db.internal/returnflow
  },
  -- node = "NAME",              -- this node's name in a cluster (letters, digits, . _ -); default the host name

  -- The operator's console in a browser (docs/console.md): off unless this table is here. Loopback
  -- by default: reach it over an SSH tunnel or a TLS proxy of your own, never bare on the Internet.
  -- console = {
  --   listen = "127.0.0.1:8788",
  --   token = { env = "RETURNFLOW_CONSOLE_TOKEN" },   -- 16 bytes or more: openssl rand -hex 24
  -- },

  caps = {                       -- limits on the mapping scripts, per event
    memory_mib = 32,             -- memory of a tenant's Lua state, in MiB
    time_ms = 500,               -- CPU time one event may take, in milliseconds
  },

  -- A tenant's scripts folder is watched: a saved change is loaded in a fresh state, checked, and
  -- takes over between two events; a version that does not load is refused (log, /metrics,
  -- `returnflow status`) and the running one stays. serve maps from a frozen copy of each version,
  -- data/scripts/TENANT/VERSION, and every mapped event records its VERSION.
  watch_scripts = true,
  reload_requires_specs = false, -- true: a new version must also pass its own busted specs (the folder's
                                 -- spec/, else the spec/ beside it; run with `returnflow test`)

  tenants = {                    -- one entry per merchant; the id is the {tenant} of POST /v1/webhooks/{tenant}
    demo = {                     -- an id is letters, digits, _ and -
      scripts = "scripts",       -- the mapping scripts folder (default "scripts")

      -- Loop's webhook secret: X-Loop-Signature is checked against it (401 when it does not match).
      -- FOR THE DEMO ONLY: a secret written in a file that is checked in is no secret. For a real
      -- store, copy the secret from Loop's webhook settings into the environment and write
      --   webhook_secret = { env = "LOOP_WEBHOOK_SECRET" },
      -- (or { file = "/run/secrets/loop-webhook" }).
      webhook_secret = "demo-secret-not-for-production",

      klaviyo = {
        key_kind = "private",    -- "private" (pk_... key, /api/ endpoints) or "public" (site id, /client/ only)
        -- key = { env = "KLAVIYO_PRIVATE_KEY" },
                                 -- no key: the tenant runs dry, and the exact requests it would send are
                                 -- appended to data/dry/demo.ndjson instead of going to Klaviyo
        -- site_id = "AbC123",   -- key_kind "public" only: the 6-character public API key (company_id)
        revision = "2026-07-15", -- Klaviyo API revision header
        base_url = "https://a.klaviyo.com", -- where requests go (tests point it at the stand-in)
        rate_scale = 1,          -- multiplies Klaviyo's rate limits (e.g. 0.5 to leave room for other tools)
      },

      segments_property = "returnflow_segments", -- profile property holding out:segment() tags
    },
  },
}
