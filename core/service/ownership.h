/*
 * ownership.h: which tenants this node maps and delivers (the cluster section of store_db.h).
 *
 * On a shared store (PostgreSQL) a thread keeps this node's leases: it heartbeats, takes the tenants
 * rendezvous hashing gives it over the live nodes, hands over those it should not keep, and stops
 * counting a lease it could not renew in time (self-fencing) before any other node may take it. On
 * a single-node store (SQLite) this node owns every tenant and no thread runs.
 *
 * The mapping threads and the deliverer ask ownership_holds each pass; a NULL ownership (a batch
 * job's deliverer) owns everything, as before leases existed.
 */
#ifndef RF_OWNERSHIP_H
#define RF_OWNERSHIP_H

#include "config.h"
#include "strbuf.h"

typedef struct ownership ownership;

/* Starts keeping cfg's tenants for this node (cfg is read now only: see ownership_set_config).
 * NULL with err filled when the store cannot be opened. */
ownership *ownership_start(const config *cfg, char *err, size_t errlen);

/* 1 when several nodes share the store (leases matter), 0 on a single-node store or for NULL. */
int ownership_clustered(const ownership *o);

/* This node's name ("" for NULL). */
const char *ownership_node(const ownership *o);

/* Whether this node may map and deliver the tenant now; *epoch (may be NULL) is the lease's, to be
 * checked with store_fence in each write that must come from the owner. Thread-safe. */
int ownership_holds(ownership *o, const char *tenant, long long *epoch);

/* The deliverer's requests in flight for a tenant: a lease handed to another node is given up once
 * they are answered (or after a bound), so the next owner does not send them again. */
void ownership_in_flight(ownership *o, const char *tenant, int n);

/* The tenants and scripts versions now running (a hot reload, SIGHUP): published for the cluster,
 * so nodes that run another version do not take these tenants. Thread-safe. */
void ownership_set_config(ownership *o, const config *cfg);

/* Calls cb(ud) on the ownership thread after it took a lease, so the mapping threads start on the
 * tenant now rather than at their next timed pass (cb must be thread-safe). */
void ownership_on_take(ownership *o, void (*cb)(void *ud), void *ud);

/* Appends the JSON array of the tenants this node holds, in config order. */
void ownership_owned_json(ownership *o, strbuf *out);

/* Gives every lease up and says this node is gone, so the others take over at once; frees o. */
void ownership_stop(ownership *o);

#endif
