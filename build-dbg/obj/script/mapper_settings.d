build-dbg/obj/script/mapper_settings.o: core/script/mapper_settings.c \
 core/script/mapper_settings.h core/base/config.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/script/mapper.h core/script/sandbox.h core/base/strbuf.h
core/script/mapper_settings.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/script/mapper.h:
core/script/sandbox.h:
core/base/strbuf.h:
