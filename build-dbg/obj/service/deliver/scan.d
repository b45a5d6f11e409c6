build-dbg/obj/service/deliver/scan.o: core/service/deliver/scan.c \
 core/service/deliver/deliverer.h core/service/deliver/bulk.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/deliver.h \
 core/base/strbuf.h core/base/strmap.h core/service/deliver/rate.h \
 core/store/store_db.h core/store/states.h \
 core/script/klaviyo_endpoints.h core/base/log.h
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
core/script/klaviyo_endpoints.h:
core/base/log.h:
