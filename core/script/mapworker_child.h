/*
 * mapworker_child.h: the mapping worker's main (`returnflow __mapworker TENANT`, started by serve).
 */
#ifndef RF_MAPWORKER_CHILD_H
#define RF_MAPWORKER_CHILD_H

/* Runs a mapping worker on fd 3 until its parent closes the channel; never returns. */
int mapworker_child_main(int argc, char **argv);

#endif
