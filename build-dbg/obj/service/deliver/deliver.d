build-dbg/obj/service/deliver/deliver.o: core/service/deliver/deliver.c \
 core/service/deliver/deliverer.h core/service/deliver/bulk.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/deliver.h \
 core/base/strbuf.h core/base/strmap.h core/service/deliver/rate.h \
 core/store/store_db.h core/store/states.h core/base/clock.h \
 core/service/deliver/dry.h core/json/json.h core/base/log.h
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
core/service/deliver/dry.h:
core/json/json.h:
core/base/log.h:
