build-dbg/obj/base/clock.o: core/base/clock.c core/base/clock.h
core/base/clock.h:
