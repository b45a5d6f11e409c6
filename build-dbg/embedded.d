build-dbg/embedded.o: build-dbg/embedded.c core/script/embedded.h
core/script/embedded.h:
