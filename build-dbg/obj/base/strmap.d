build-dbg/obj/base/strmap.o: core/base/strmap.c core/base/strmap.h
core/base/strmap.h:
