/*
 * store_faults.h: the fault suite's store that refuses on purpose (store_faults.c); nothing unless
 * RETURNFLOW_STORE_FAULTS is set. Called before a connection opens; once per process does it.
 */
#ifndef RF_STORE_FAULTS_H
#define RF_STORE_FAULTS_H

void store_faults_init(void);

#endif
