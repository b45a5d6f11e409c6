/*
 * dry.h: delivery for a dry tenant (one without a Klaviyo key): its requests go to a file instead of
 * Klaviyo, exactly as they would be sent, the key redacted.
 */
#ifndef RF_DRY_H
#define RF_DRY_H

#include "config.h"
#include "store_db.h"

/* Appends up to DRY_CHUNK of the tenant's queued requests to DATA/dry/TENANT.ndjson (fsynced), then
 * marks them delivered: one transaction, so one writer at a time (serve, or a batch job beside it)
 * writes each request once. Returns how many, or -1. */
#define DRY_CHUNK 1000
int dry_deliver(store_db *db, const char *data_dir, const tenant_config *tc);

#endif
