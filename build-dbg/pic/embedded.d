build-dbg/pic/embedded.o: build-dbg/embedded.c core/script/embedded.h
core/script/embedded.h:
