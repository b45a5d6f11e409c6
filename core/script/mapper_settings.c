/*
 * mapper_settings.c: see mapper_settings.h.
 */
#include "mapper_settings.h"

mapper_config mapper_config_of(const config *cfg, const tenant_config *tc) {
    return (mapper_config){ .scripts_dir = tc->scripts, .display_dir = tc->scripts_source, .tenant = tc->id,
                            .key_kind = tc->key_kind, .site_id = tc->site_id, .revision = tc->revision,
                            .segments_property = tc->segments_property, .caps = cfg->caps };
}
