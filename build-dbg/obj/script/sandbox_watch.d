build-dbg/obj/script/sandbox_watch.o: core/script/sandbox_watch.c \
 core/script/sandbox_internal.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/script/sandbox.h
core/script/sandbox_internal.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/script/sandbox.h:
