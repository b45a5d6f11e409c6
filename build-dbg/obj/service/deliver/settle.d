build-dbg/obj/service/deliver/settle.o: core/service/deliver/settle.c \
 core/service/deliver/deliverer.h core/service/deliver/bulk.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/deliver.h \
 core/base/strbuf.h core/base/strmap.h core/service/deliver/rate.h \
 core/store/store_db.h core/store/states.h core/base/clock.h \
 core/store/store_health.h core/store/store_db.h
core/service/deliver/deliverer.h:
core/service/deliver/bulk.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/service/deliver/deliver.h:
core/base/strbuf.h:
core/base/strmap.h:
core/service/deliver/rate.h:
core/store/store_db.h:
core/store/states.h:
core/base/clock.h:
core/store/store_health.h:
core/store/store_db.h:
