build-dbg/obj/store/store_faults.o: core/store/store_faults.c \
 core/store/store_faults.h
core/store/store_faults.h:
