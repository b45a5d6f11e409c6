build-dbg/obj/service/snapshot.o: core/service/snapshot.c \
 core/service/snapshot.h
core/service/snapshot.h:
