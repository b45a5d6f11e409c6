/*
 * share.h: where the files returnflow ships beside its binary are (the Loop
 * fixtures, the template catalogue, the default scripts as text).
 */
#ifndef RF_SHARE_H
#define RF_SHARE_H

/* The checkout this binary was built in (ROOT when it runs as ROOT/BUILD/returnflow and ROOT holds
 * fixtures/loop and templates), wherever it is run from; else the installed share folder compiled
 * in (RETURNFLOW_SHARE). Never the working directory: a caller that prefers ./templates or
 * ./fixtures/loop looks there first itself. Never NULL; the same string for the process's life. */
const char *share_dir(void);

#endif
