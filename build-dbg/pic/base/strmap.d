build-dbg/pic/base/strmap.o: core/base/strmap.c core/base/strmap.h
core/base/strmap.h:
