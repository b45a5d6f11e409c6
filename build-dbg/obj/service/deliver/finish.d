build-dbg/obj/service/deliver/finish.o: core/service/deliver/finish.c \
 core/service/deliver/deliverer.h core/service/deliver/bulk.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/deliver.h \
 core/base/strbuf.h core/base/strmap.h core/service/deliver/rate.h \
 core/store/store_db.h core/store/states.h core/service/deliver/answer.h \
 core/base/clock.h core/base/log.h
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
core/service/deliver/answer.h:
core/base/clock.h:
core/base/log.h:
