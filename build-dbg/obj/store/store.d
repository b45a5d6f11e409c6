build-dbg/obj/store/store.o: core/store/store.c core/store/store.h \
 core/base/clock.h core/store/store_db.h core/store/states.h \
 core/base/strbuf.h core/store/store_health.h
core/store/store.h:
core/base/clock.h:
core/store/store_db.h:
core/store/states.h:
core/base/strbuf.h:
core/store/store_health.h:
