-- hostile: a fresh cjson instance with its decode depth limit lifted decodes 1e6 nested arrays: C recursion past the C stack (segfault of the mapping process) (memory/stack: deep nesting via a library)
-- expect: failed
return {
  ["return.created"] = function()
    local cjson = require "cjson"
    local c = cjson.new and cjson.new() or cjson
    pcall(c.decode_max_depth, 1e9)
    local ok, err = pcall(c.decode, ("["):rep(1000000))
    error("decoded: " .. tostring(ok) .. " " .. tostring(err), 0)
  end,
}
