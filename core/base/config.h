/*
 * config.h: returnflow.conf.lua, read once at start (and again on SIGHUP).
 */
#ifndef RF_CONFIG_H
#define RF_CONFIG_H

#include <stddef.h>
#include <string.h>
#include "sandbox.h"

typedef struct tenant_config {
    char *id;                  /* [A-Za-z0-9_-]+, the {tenant} of /v1/webhooks/{tenant} */
    char *scripts;             /* scripts folder, relative to the config file's folder; serve maps
                                  from a frozen copy of it instead (snapshot.c) */
    char *scripts_source;      /* serve: the folder as configured, watched for changes; else NULL */
    char scripts_version[16];  /* serve: the frozen copy's version, recorded with each mapped event */
    int scripts_created;       /* serve: the frozen copy was made for this config (undone if it is refused) */
    char *webhook_secret;      /* Loop's webhook secret: never logged, never written back */
    char *key_kind;            /* "private" (default) or "public" */
    char *key;                 /* Klaviyo private key, or NULL: the tenant runs dry */
    char *site_id;             /* public key: the company_id */
    char *revision;            /* default KLAVIYO_REVISION (version.h) */
    char *base_url;            /* default https://a.klaviyo.com; tests point it at the stand-in */
    char *segments_property;   /* default returnflow_segments */
    double rate_scale;         /* multiplies Klaviyo's rate limits (default 1) */
} tenant_config;

typedef struct config {
    char *path;                /* the file read */
    char *listen;              /* "127.0.0.1:8787" */
    char *data_dir;            /* default "data", relative to the config file's folder */
    int workers;               /* mapping threads; 0 = one per core */
    int retention_days;        /* raw events kept this long, for replay (default 30) */
    size_t max_body;           /* largest webhook body accepted (default 1 MiB) */
    int max_connections;       /* default 1024 */
    double header_timeout;     /* seconds to receive a request's headers (default 10) */
    double body_timeout;       /* seconds to receive its body (default 30) */
    double idle_timeout;       /* seconds a keep-alive connection may idle (default 60) */
    double max_age_hours;      /* delivery retries stop after this (default 72) */
    double backoff_max;        /* delivery.backoff_max_seconds: the longest wait between two tries of a
                                  request (default 300) */
    double request_timeout;    /* delivery.timeout_seconds: a request's answer (default 30) */
    double bulk_timeout;       /* delivery.bulk_timeout_seconds: a bulk job's, up to 5 MB (default 120) */
    double connect_timeout;    /* delivery.connect_timeout_seconds (default 10) */
    double store_check_seconds; /* store.check_seconds: serve's start check of the store stops after
                                  this (default 10) */
    char *store_url;           /* store.url: a postgresql:// URL (a secret: it may hold a password; never
                                  logged, see store_location_safe); NULL: SQLite in data_dir */
    char *node;                /* node: this node's name in a cluster (default: the host name) */
    sandbox_caps caps;         /* per tenant state and per event */
    int watch_scripts;         /* serve reloads a tenant's scripts when its folder changes (default 1) */
    int reload_requires_specs; /* ... only if the folder's own busted specs pass (default 0) */
    int core_dumps;            /* debug.core_dumps: serve may dump core (default 0: it holds secrets) */
    char *console_listen;      /* console.listen: the browser console's HOST:PORT; NULL: no console */
    char *console_token;       /* console.token: the admin token (a secret, 16 bytes or more) */
    tenant_config *tenants;
    int ntenants;
} config;

/* A dry tenant sends nothing to Klaviyo: its requests go to DATA/dry/ID.ndjson.
 * That is a private-key tenant without a key, or a public one without a site id. */
static inline int tenant_is_dry(const tenant_config *t) {
    return t->key_kind && strcmp(t->key_kind, "public") == 0 ? !t->site_id : !t->key;
}

/* Reads path. On any problem returns NULL and fills err with every problem
 * found, one "returnflow.conf.lua: tenants.demo.webhook_secret: missing" a
 * line: a server never starts half-configured. Secrets may be written
 * inline, or as { env = "NAME" } or { file = "PATH" }. */
config *config_load(const char *path, char *err, size_t errlen);

/* The same, resolving only the secrets a command uses (a read-only command must run with a key's
 * environment variable unset): the others are checked for form and left NULL, so a tenant whose
 * key was not resolved looks dry. Never hand such a config to delivery. */
enum { CONFIG_WEBHOOK_SECRETS = 1, CONFIG_KLAVIYO_KEYS = 2,
       CONFIG_STORE_URL = 4 /* always resolved: every command that reads the store needs it */,
       CONFIG_CONSOLE_TOKEN = 8 };
config *config_load_secrets(const char *path, int secrets, char *err, size_t errlen);
void config_free(config *c);

/* Where the store is (store_db.h): the data folder (SQLite), or the store's URL when one is set. */
static inline const char *config_store_location(const config *c) { return c->store_url ? c->store_url : c->data_dir; }

const tenant_config *config_tenant(const config *c, const char *id, size_t idlen);

#endif
