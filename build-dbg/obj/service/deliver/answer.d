build-dbg/obj/service/deliver/answer.o: core/service/deliver/answer.c \
 core/service/deliver/answer.h
core/service/deliver/answer.h:
