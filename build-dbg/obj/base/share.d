build-dbg/obj/base/share.o: core/base/share.c core/base/share.h
core/base/share.h:
