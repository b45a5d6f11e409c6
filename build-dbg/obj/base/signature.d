build-dbg/obj/base/signature.o: core/base/signature.c core/base/signature.h
core/base/signature.h:
