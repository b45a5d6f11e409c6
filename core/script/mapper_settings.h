/*
 * mapper_settings.h: a tenant's mapper settings from its config, built in one place for every
 * caller (serve's mapping threads, a reload's check, a batch job, a SIGHUP's check), so a setting
 * added to the mapper reaches all of them.
 */
#ifndef RF_MAPPER_SETTINGS_H
#define RF_MAPPER_SETTINGS_H

#include "config.h"
#include "mapper.h"

/* The tenant's scripts folder (its frozen copy under serve), named in messages by the folder the
 * merchant edits; key kind, site id, revision, segments property; the config's caps. No backfill. */
mapper_config mapper_config_of(const config *cfg, const tenant_config *tc);

#endif
