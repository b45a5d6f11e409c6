/* version.h: the one place the release number is written, and the Klaviyo API revision the host
 * sends by default (a tenant's klaviyo.revision overrides it). The tools read it as
 * returnflow.native's klaviyo_revision; the emitter's returnflow.klaviyo REVISION is the same value
 * written in Lua, and a spec checks that they agree. */
#ifndef RF_VERSION_H
#define RF_VERSION_H
#define RETURNFLOW_VERSION "0.1.0"
#define KLAVIYO_REVISION "2026-07-15"
#endif
