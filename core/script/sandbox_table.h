/*
 * sandbox_table.h: table.insert, remove, sort and concat whose C loops end at the caps.
 */
#ifndef RF_SANDBOX_TABLE_H
#define RF_SANDBOX_TABLE_H

#include "lua.h"

/* The longest table (by #t or __len) these functions accept: 2^26 elements, 1 GiB of table slots,
 * far past any memory cap; a longer one can only be a border or __len trick. */
#define SANDBOX_TABLE_MAX ((lua_Integer)1 << 26)

/* Replaces table.insert, table.remove, table.sort and table.concat in the state's (host) table library. */
void sandbox_table_open(lua_State *L);

#endif
