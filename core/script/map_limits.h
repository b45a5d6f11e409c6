/*
 * map_limits.h: how much one event's result may hold, shared by the mapper and the worker channel.
 *
 * serve maps in worker processes and the parent kills a worker whose result passes these limits;
 * map and check map in-process. Both read the limits from here, and the mapper itself fails an
 * event over them with a clear reason, so `map` tells the merchant what `serve` will do.
 */
#ifndef RF_MAP_LIMITS_H
#define RF_MAP_LIMITS_H

#define MAP_MAX_REQUESTS 1000                 /* requests (scheduled ones included) of one event */
#define MAP_MAX_CANCELS 1000                  /* out:cancel calls of one event */
#define MAP_MAX_MEMORY 1000                   /* out:remember writes of one event */
#define MAP_MAX_KEY 1024                      /* bytes of a memory, schedule or cancel key; a profile */
#define MAP_MAX_MEMORY_VALUE (1u << 20)       /* bytes of one memory write's JSON value */

#endif
