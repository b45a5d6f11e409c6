/*
 * mapworker_record.h: the process-wide record of mapping workers that died, by tenant (mapworker.c
 * writes it; /healthz, /metrics and `returnflow status` read it through mapworker.h).
 */
#ifndef RF_MAPWORKER_RECORD_H
#define RF_MAPWORKER_RECORD_H

enum mapworker_cause { CAUSE_TIMEOUT, CAUSE_CRASH, CAUSE_PROTOCOL, CAUSE_EXIT, CAUSE_LOAD, NCAUSES };

/* Counts one death of tenant's worker, keeps its reason, logs it, and (with a status folder)
 * writes DIR/TENANT/worker.json. Safe from any thread. */
void mapworker_record_death(const char *tenant, int cause, const char *reason);

#endif
