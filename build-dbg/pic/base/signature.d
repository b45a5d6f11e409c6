build-dbg/pic/base/signature.o: core/base/signature.c core/base/signature.h
core/base/signature.h:
